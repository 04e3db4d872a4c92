"""``--push-to-hub REPO``: upload an exported hub folder with huggingface_hub.

``HfApi().create_repo(REPO, exist_ok=True)`` then ``upload_folder``. The token is
huggingface_hub's own business (``HF_TOKEN``, or the one ``hf auth login`` stored): gpta
never reads, prints or writes it. The export's marker file stays local.
"""

from __future__ import annotations

from pathlib import Path

from gpta.errors import GptaUserError
from gpta.export.folder import MARKER


def check_repo_id(repo_id: str) -> None:
    """Fail unless ``repo_id`` is a Hub model id (``user/name``), before anything is written."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise GptaUserError(
            f"--push-to-hub {repo_id!r} is not a Hub repo id ({err})",
            hint="give it as user/name or organization/name",
        ) from None
    if repo_id.count("/") != 1:
        raise GptaUserError(
            f"--push-to-hub {repo_id!r} is not a Hub repo id",
            hint="give it as user/name or organization/name",
        )


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The base error of the HTTP client huggingface_hub uses (httpx2 now, httpx or requests
    in other versions): a failed connection raises it as it is, not as an OSError. It is the
    client's class that huggingface_hub's own HfHubHTTPError derives from."""
    from huggingface_hub.errors import HfHubHTTPError

    bases = HfHubHTTPError.__mro__[1:]
    return tuple(b for b in bases if not issubclass(OSError, b) and issubclass(b, Exception))


def push_folder(folder: Path, repo_id: str, *, private: bool = False) -> str:
    """Create ``repo_id`` (kept if it exists) and upload ``folder`` to it; returns the URL of
    the commit. Failures (no login, no permission, no network) are a :class:`GptaUserError`
    naming the folder, which is kept for a later upload."""
    from huggingface_hub import HfApi

    api = HfApi()
    failures: tuple[type[BaseException], ...] = (
        OSError,
        ValueError,
        *_transport_errors(),
    )  # HTTP, token, offline, network
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private or None)
        info = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="model",
            commit_message="gpta export",
            ignore_patterns=[MARKER],
        )
    except failures as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GptaUserError(
            f"--push-to-hub {repo_id}: the upload failed ({type(err).__name__}: {first[:300]}); "
            f"the exported folder is kept at {folder}",
            hint="log in with `hf auth login` or set HF_TOKEN to a token with write access, "
            "check the network, then run the export again (or `hf upload` the folder)",
        ) from None
    return str(getattr(info, "commit_url", info))
