"""Turning a trained model into music: autoregressive decoding and diffusion sampling."""
