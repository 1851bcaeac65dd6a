"""Fixtures for tests, smoke runs and the demo, kept apart from the product (like gemma's `gm.testing`).

- `checkpoints`: tiny random Qwen2.5-Omni thinkers, and the released widths with the depth cut, written
  in the Hugging Face layout by transformers (`build_tiny_checkpoint`, `released_config`,
  `load_reference`);
- `eval_data`: benchmark folders in the publishers' layouts (AudioMarathon's release, MMAU-Pro's
  parquet) with short synthetic audio, and a fake engine for the evaluation runner.
"""
