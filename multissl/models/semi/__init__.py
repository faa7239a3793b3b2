"""The semi-supervised family on images: one shared config / data hook / classifier, one file per algorithm."""
