"""Text adapters: tokenizers, masking, blocks, sentence batches."""
