"""CLI sub-commands: each module defines add_parser(subparsers); multissl.cli discovers them."""
