"""Image adapters: augmentation policies, views, masks and patches."""
