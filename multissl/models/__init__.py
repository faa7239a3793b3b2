"""One file per method (a MethodModel subclass, see base.py), shared parts in common/, export and loading.

Importing this package imports no method: multissl.registry names each method's module, which is
imported when the method is used (multissl.registry.register_auto_classes imports them all).
"""
