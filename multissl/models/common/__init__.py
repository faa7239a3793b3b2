"""Pieces several methods share: backbones and pooling, vision config fields and heads, EMA teachers, key queues."""
