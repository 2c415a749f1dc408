"""What a staged file is: its structure (structure, bmff), the facts read from it (probe, identity) and the
description made of them (metadata, pure)."""
