"""hr_jax: Qwen2.5-Omni thinker in JAX with HeadRouter audio-token pruning."""
