"""Court-ready evidence packages (format 2): a BagIt (RFC 8493) bag an outside examiner verifies completely
with standard tools, trusting nothing from us but the agency root's fingerprint.

The package holds the original files (re-hashed while copied out of the store: tampered bytes are never
exported), every signed manifest with its exact signed bytes and raw signature, the custody events of every
item with the stretch of the chain around them (digest-only rows for other recordings' events) up to an
anchor written into WORM storage at export, the root certificate and the certificates and revocations of
every key that signed anything in it, the report, PREMIS, VERIFY.txt and verify.py; the export key signs
tagmanifest-sha256.txt, which pins every byte. Modules: build (the order of the steps), refusals,
signing_keys, payload, chain_segment, anchor_files, trust_files, seal, verify_text, hooks (the parts other
modules make: timestamps, PREMIS, the court report, verify.py). The layout is
docs/verification.md's.
"""
from __future__ import annotations

from catalog.package.build import ExportResult, bag_info, export_package
from catalog.package.payload import PACKAGE_FORMAT, Item, safe_name
from catalog.package.refusals import provenance_problems
from catalog.package.signing_keys import PackageKeys, PackageSigning

__all__ = ["PACKAGE_FORMAT", "ExportResult", "Item", "PackageKeys", "PackageSigning", "bag_info", "export_package",
           "provenance_problems", "safe_name"]
