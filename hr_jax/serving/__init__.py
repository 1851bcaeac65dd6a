"""`hr-jax serve`: an OpenAI-compatible chat-completions server for audio, with audio-token pruning
chosen per request and continuous batching.

- `protocol`: the API's request checks, responses and stream chunks; `audio_payload`: the audio a
  client sends; `errors`: the error objects;
- `jobs`: a request inside the engine thread and the events it emits;
- `scheduler`: the engine thread (prefill into free decode slots, decode every slot together);
- `app`: the Starlette routes; `server`: the command (uvicorn, draining on SIGTERM);
- `metrics`: what `/metrics` reports, in Prometheus' text format.
"""
