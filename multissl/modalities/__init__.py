"""multissl.modalities."""
