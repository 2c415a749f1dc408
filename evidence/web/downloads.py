"""A package built for the browser (a case's, a selection's, a release's): written into a temporary folder, sent as
a ZIP download, then removed. A refusal or a fault stops it before anything is sent, as one status and message for
the page that asked, the same for every kind of package: nothing half-verified leaves the archive."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from fastapi.responses import FileResponse
from sqlmodel import Session
from starlette.background import BackgroundTask

from catalog.access import AccessRefused, ReasonRequired
from catalog.errors import ExportFailed, PermissionDenied
from catalog.package import PackageSigning, safe_name
from catalog.releases import ReleaseRefused
from catalog.said import say
from catalog.signing import SignatureInvalid
from evidence.web.deps import WebConfig
from storage import BackendUnavailable, StorageError

__all__ = ["PackageRefused", "package_signing", "zip_download"]

#: What stops a package, each with the status the page answers: a rule broken (400), no stated reason (422), a
#: right or a scope refused (403), the store away (503), an object missing or altered, a key unusable (409).
_STOPS = (ReleaseRefused, AccessRefused, ExportFailed, StorageError, SignatureInvalid, PermissionDenied)


class PackageRefused(Exception):
    """No package: *status* for the page, and a message naming what was asked (*what*) and why."""

    def __init__(self, status: int, what: str, cause: Exception) -> None:
        super().__init__(say("no package for {what}: {cause}", what=what, cause=str(cause)))
        self.status = status

    def __str__(self) -> str:  # the Said whole (what and why said in the reader's language)
        return self.args[0]  # type: ignore[no-any-return]


def _status(exc: Exception) -> int:
    return (400 if isinstance(exc, ReleaseRefused) else 422 if isinstance(exc, ReasonRequired) else
            403 if isinstance(exc, AccessRefused | PermissionDenied) else
            503 if isinstance(exc, BackendUnavailable) else 409)


def package_signing(config: WebConfig) -> PackageSigning:
    """The keys a package made by this server is signed with (the station's, and the export key if one is set)."""
    return PackageSigning(station=config.station, station_key=config.key, settings=config.settings,
                          export_key_path=config.settings.export_key_path if config.settings else None)


def zip_download(session: Session, name: str, what: str, build: Callable[[Path], object]) -> FileResponse:
    """*build* the package into `<name>.zip` and answer it as a download (the folder goes once it is sent);
    PackageRefused, after the session is rolled back and the folder removed, when the package was refused."""
    folder = Path(tempfile.mkdtemp(prefix="evidence-web-package-"))
    out = folder / f"{safe_name(name)}.zip"
    try:
        build(out)
    except _STOPS as exc:
        shutil.rmtree(folder, ignore_errors=True)
        session.rollback()
        raise PackageRefused(_status(exc), what, exc) from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(out, media_type="application/zip", filename=out.name,
                        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))
