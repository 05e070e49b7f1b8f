"""What each federation role uses of the site and of the other roles, as small Protocols.

Every role (:class:`~federation.accept.Acceptance`, :class:`~federation.forwarding.Forwarding`,
:class:`~federation.results.Results`, :class:`~federation.outbox.Outbox`,
:class:`~federation.capacity.Advertiser`) takes only the collaborators it calls,
typed with the Protocols below. :mod:`federation.service` wires the real
objects in, which makes the type checker confirm that each fits; unit tests wire
small fakes instead. Grouped by what they stand for: the site's jobs, the site's
files and servers, the federation's own rows, and the other federation parts.
"""

from __future__ import annotations

from collections.abc import (
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from pathlib import Path
from typing import Any, Protocol, TypeVar

from federation.peers import PeerConfig
from federation.protocol import Message
from federation.store import ForwardRow, OfferRow, OutboxEntry, PeerAdvertRow
from scheduler.dependencies import Upstream
from scheduler.placement import PeerCapacity
from scheduler.profile import ServerView
from site_agent.lifecycle import TransactionHook
from site_agent.storage import OpenFrame
from site_agent.store.records import FrameRecord, JobRecord, JobState, RelayedTask, TaskRecord
from site_agent.store.usage import UsageEntry, UsageTotals
from spillway.core.records import FileEntry

_R = TypeVar("_R", bound=Message)

# --- the site's jobs ---------------------------------------------------------------


class JobReader(Protocol):
    async def get_job(self, job_id: str) -> JobRecord | None: ...


class JobControl(JobReader, Protocol):
    """The site's jobs as the remote side (:class:`~federation.accept.Acceptance`) uses them."""

    async def create_job(self, job: JobRecord, chunks: Sequence[tuple[int, ...]]) -> None:
        """Create an accepted job and its waiting tasks in one step.

        Raises :class:`site_agent.errors.JobExistsError` when a job with that id exists.
        """

    async def cancel(self, job_id: str) -> None:
        """Cancel the job as a user's ``spillway cancel`` would."""

    async def list_frames(self, job_id: str) -> list[FrameRecord]: ...

    async def get_frame(self, job_id: str, frame: int) -> FrameRecord | None: ...

    async def list_tasks(self, job_id: str) -> list[TaskRecord]: ...

    async def server_names(self) -> dict[str, str]:
        """Server id -> name, for every registered server."""


class ForwardedJobs(JobReader, Protocol):
    """The site's jobs as the origin's :class:`~federation.forwarding.Forwarding` uses them."""

    async def set_job_placement(
        self,
        job_id: str,
        *,
        placement: str,
        reason: str,
        epoch: int,
        remote_job_id: str | None,
        at: float,
    ) -> None: ...

    async def replace_job(
        self,
        job_id: str,
        *,
        old_epoch: int,
        placement: str,
        reason: str,
        at: float,
        hook: TransactionHook | None = None,
    ) -> int | None:
        """Re-place at epoch + 1 if still at ``old_epoch`` and unfinished; ``hook`` joins the transaction."""

    async def local_frames_waiting(self) -> int: ...

    async def seconds_per_frame(self) -> float | None: ...

    async def job_upstreams(self, job_ids: Sequence[str]) -> dict[str, tuple[Upstream, ...]]:
        """Per job with dependencies among ``job_ids``: the jobs it waits for, as they are now."""


class FinishedJobs(JobReader, Protocol):
    """The site's jobs as the origin's :class:`~federation.results.Results` uses them."""

    async def remote_start(self, job_id: str, *, at: float) -> bool:
        """The peer runs the job: queued to running (False if it was not queued)."""

    async def list_tasks(self, job_id: str) -> list[TaskRecord]: ...

    async def relay_progress(
        self,
        job_id: str,
        *,
        epoch: int,
        tasks: Sequence[RelayedTask],
        at: float,
        hook: TransactionHook | None = None,
    ) -> bool:
        """Mirror the peer's tasks on the job's rows, fenced on ``epoch``; ``hook`` joins in."""

    async def finish_forwarded_job(
        self,
        job_id: str,
        *,
        epoch: int,
        state: JobState,
        frames: Sequence[FrameRecord],
        error: str,
        at: float,
        hook: TransactionHook | None = None,
        usage: UsageEntry | None = None,
        tasks: Sequence[RelayedTask] = (),
    ) -> bool:
        """Record frames and finish the job, fenced on ``epoch``; ``hook`` and the ledger row
        ``usage`` join the transaction."""


class UsageLedger(Protocol):
    """The site's accounting ledger (:class:`site_agent.store.usage.UsageLedger`)."""

    async def job_totals(self, job_id: str) -> UsageTotals:
        """Everything accounted to the job here."""

    async def record_transfer(
        self, *, job_id: str, peer: str, at: float, bytes_in: int = 0, bytes_out: int = 0
    ) -> None:
        """Asset or frame bytes exchanged with ``peer`` for this site's job ``job_id``."""


class QueueDepth(Protocol):
    async def local_frames_waiting(self) -> int: ...


class Wakeup(Protocol):
    """The site's dispatcher: new local work is waiting."""

    def wake(self) -> None: ...


# --- the site's servers and files ------------------------------------------------


class ServerViews(Protocol):
    async def server_views(self) -> list[ServerView]:
        """Every registered server: its live view when connected, else offline."""


class BlobIndex(Protocol):
    def missing(self, hashes: Iterable[str]) -> list[str]: ...


class BlobFiles(Protocol):
    def path_for(self, sha256: str) -> Path: ...


class FrameFiles(Protocol):
    def job_dir(self, job_name: str, job_id: str) -> Path: ...


class CheckedFrames(FrameFiles, Protocol):
    """Stored frames opened only after their bytes match the record (the remote's frame route)."""

    async def open_frame(
        self, job_dir: Path, file_name: str, *, job_id: str, frame: int, sha256: str
    ) -> OpenFrame: ...


class FrameWriter(FrameFiles, Protocol):
    max_frame_bytes: int

    def frame_path(self, job_dir: Path, file_name: str) -> Path:
        """Where a frame's file goes (ValueError for a name no job folder holds)."""


# --- the federation's own rows (implemented by federation.store.FederationStore) --


class OfferRows(Protocol):
    async def insert_offer(
        self,
        *,
        key: str,
        site: str,
        origin_job_id: str,
        epoch: int,
        body: Mapping[str, Any],
        at: float,
    ) -> OfferRow: ...

    async def get_offer(self, key: str) -> OfferRow | None: ...

    async def offer_by_job(self, remote_job_id: str) -> OfferRow | None: ...

    async def pending_offers(self, site: str) -> list[OfferRow]: ...

    async def commit_offer(self, key: str, remote_job_id: str, *, at: float) -> bool: ...

    async def finished_offers_without_final(self) -> list[OfferRow]: ...


class AcceptedOffers(Protocol):
    """The offer a job accepted here came with (its forwarding path)."""

    async def offer_by_job(self, remote_job_id: str) -> OfferRow | None: ...


class AdvertRows(Protocol):
    async def save_advert(self, name: str, advert: Mapping[str, Any], *, at: float) -> None: ...

    async def list_adverts(self) -> list[PeerAdvertRow]: ...

    async def save_job_refusal(
        self, peer: str, job_id: str, reasons: Sequence[str], *, at: float, keep_s: float
    ) -> None: ...

    async def job_refusals(self, limit: int) -> list[tuple[str, str]]: ...


class OutboxRows(Protocol):
    async def enqueue(
        self,
        *,
        msg_id: str,
        peer: str,
        kind: str,
        job_id: str,
        body: Mapping[str, Any],
        final: bool,
        at: float,
    ) -> bool: ...

    async def pending_outbox(self, limit: int = 100) -> list[OutboxEntry]: ...

    async def outbox_delivered(self, msg_id: str, *, at: float) -> None: ...

    async def outbox_attempt(self, msg_id: str, error: str) -> None: ...


class ForwardContact(Protocol):
    async def forward_contact(
        self, job_id: str, epoch: int, *, remote_state: str, frames_done: int, at: float
    ) -> None: ...

    def forward_state_hook(
        self, job_id: str, epoch: int, state: str, *, at: float
    ) -> TransactionHook: ...

    async def get_forward(self, job_id: str, epoch: int) -> ForwardRow | None: ...

    def progress_hook(
        self,
        job_id: str,
        epoch: int,
        *,
        seq: int,
        remote_state: str,
        frames_done: int,
        at: float,
    ) -> TransactionHook: ...


class ForwardRows(ForwardContact, Protocol):
    async def start_forward(self, job_id: str, epoch: int, peer: str, *, at: float) -> None: ...

    async def add_transfer(
        self,
        job_id: str,
        epoch: int,
        *,
        bytes_sent: int,
        blobs_sent: int,
        blobs_skipped: int,
        at: float,
    ) -> None: ...

    async def set_forward_state(
        self, job_id: str, epoch: int, state: str, *, remote_job_id: str | None, at: float
    ) -> None: ...

    async def open_forwards(self) -> list[ForwardRow]: ...

    async def unforwarded_jobs(self) -> list[str]:
        """Queued jobs placed at a peer whose forward at their epoch never started."""

    async def forward_peers(self, job_id: str) -> list[str]:
        """Every peer any placement of the job was offered to."""


# --- the other federation parts ----------------------------------------------------


class PeerSender(Protocol):
    """Signed messages to a peer (:class:`~federation.client.PeerClient`)."""

    async def send(
        self,
        peer: PeerConfig,
        path: str,
        msg: Message,
        reply: type[_R],
        *,
        msg_id: str | None = None,
        timeout_s: float = 30,
    ) -> _R: ...


class ForwardingClient(PeerSender, Protocol):
    async def get_json(self, peer: PeerConfig, path: str, *, timeout_s: float = 15) -> Any: ...

    async def upload_blob(self, peer: PeerConfig, sha256: str, path: Path) -> int:
        """Upload a blob the peer lacks (resumable); returns the bytes sent."""


class FileSink(Protocol):
    """Where a downloaded body goes (:class:`~federation.frame_file.FrameTarget`)."""

    size: int
    """Bytes written so far."""

    def write(self, block: bytes | memoryview) -> None:
        """Take the next block (in whichever thread reads the body)."""


class FrameDownloader(Protocol):
    async def download(self, peer: PeerConfig, path: str, target: FileSink) -> None:
        """GET ``path`` from ``peer`` and write the body into ``target``."""


class PeerContact(Protocol):
    """Reachability bookkeeping (:class:`~federation.capacity.PeerBook`)."""

    def contact_ok(self, peer: str) -> None: ...

    def contact_failed(self, peer: str, error: str) -> None: ...


class PeerCapacities(PeerContact, Protocol):
    def capacities(
        self, peers: Sequence[PeerConfig], manifest: Sequence[FileEntry] = ()
    ) -> list[PeerCapacity]:
        """Placement's view of ``peers``: their last adverts, reachability, configured
        preference and cost, and how many bytes of ``manifest`` each is known to hold."""

    def note_blobs(self, peer: str, hashes: Iterable[str]) -> None:
        """``peer`` holds these blobs (it said so in an offer reply, or we uploaded them)."""

    async def refused(
        self, peer: str, job_id: str, codes: Collection[str], reasons: Sequence[str] = ()
    ) -> None:
        """``peer`` refused an offer of ``job_id`` (a part: its split job) with ``codes``
        and the sentences ``reasons``."""

    def refusing(self, job_id: str) -> frozenset[str]:
        """Peers that refused ``job_id`` for a reason of the job itself."""


class MessageQueue(Protocol):
    """The durable outbox (:class:`~federation.outbox.Outbox`)."""

    async def enqueue(
        self, *, peer: str, kind: str, job_id: str, message: Message, msg_id: str, final: bool
    ) -> None: ...


class RemoteFinish(Protocol):
    """Apply a remote job's final status found by polling (:class:`~federation.results.Results`)."""

    async def apply_status(
        self, peer: PeerConfig, row: ForwardRow, status: dict[str, Any]
    ) -> None: ...
