"""Recorded kubelet Events: the messages per Kubernetes version, and full core/v1 Events.

:data:`KUBELET_MESSAGES` is the table of what the kubelet writes (reason, type, the Go
format string) for the versions mlnode covers (1.24-1.35), each row with the file and
tree it was read at. The formats are data written here from those sources, not code.

Trees read (``read_file``/``find_string`` on the public index; no full checkout of
kubernetes/kubernetes could be brought here, so no tag could be checked out):

* ``[k8s@00a3928]`` kubernetes/kubernetes at 00a3928bde544dbb4fd046bb78439178ec37fb5a,
  ``pkg/kubelet/images/image_manager.go``: a 1.26-era tree (``EnsureImageExists(pod,
  container, ...)`` without a context, ``podStartupLatencyTracker``: 1.26's shape);
* ``[1.28]`` kevinhehc/k8s-1.28@92a6bc5, as cited in ../shared/reference/kubelet-facts.md
  section 7 (read by an earlier session; not re-read here);
* ``[main]`` stlaz/kubernetes@924d651 (``image_manager.go``, the pullmanager era: 1.33
  or later) and @6d684ab (``image_gc_manager.go``);
* ``[search]`` code-search hits of the format string in several kubernetes trees whose
  repository the index does not name (kubelet.go, eviction/helpers.go,
  kuberuntime_container.go, cri-o server/image_pull.go, containerd
  pkg/cri/server/image_pull.go).

Where a row says ``verified``, the format was read in those trees; the versions between
them are inferred (the same format before and after), and the table says so. Nothing
here was read at a release tag.

Builders make Events as ``kubectl get events -o json`` shows them (metadata,
involvedObject with fieldPath ``spec.containers{name}``, source{component,host},
first/lastTimestamp, count, type, ``eventTime: null``, reportingComponent "kubelet",
reportingInstance); tests validate them with kubernetes-validate, strict.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlnode.units import format_go_duration

__all__ = [
    "ERRORS",
    "KUBELET_MESSAGES",
    "MessageRow",
    "event",
    "failed_message",
    "go_quote",
    "node_event",
    "pod_event",
    "pull_story",
    "pulled_message",
    "stamp",
]


@dataclass(frozen=True)
class MessageRow:
    reason: str
    type: str  # Normal / Warning
    about: str  # Pod / Node
    format: str  # Go format string, verbatim
    versions: str  # the span this row is for
    read_at: str  # file and tree(s) it was read in
    verified: str  # which versions that reading covers, and what is inferred


_IM = "pkg/kubelet/images/image_manager.go"
_SPAN = "1.24-1.35"
_INFERRED = (
    "read at [k8s@00a3928] (1.26-era), [1.28] and [main] (>=1.33); 1.24, 1.25, 1.27,"
    " 1.29-1.32, 1.34, 1.35 inferred (same format before and after), no tag read"
)

KUBELET_MESSAGES: tuple[MessageRow, ...] = (
    MessageRow("Pulling", "Normal", "Pod", "Pulling image %q", _SPAN, _IM, _INFERRED),
    MessageRow("Failed", "Warning", "Pod", "Failed to pull image %q: %v", _SPAN, _IM, _INFERRED),
    MessageRow(
        "Failed",
        "Warning",
        "Pod",
        "Error: %v",
        _SPAN,
        "pkg/kubelet/kuberuntime/kuberuntime_container.go startContainer"
        ' (FailedToCreateContainer = "Failed"; %v is the grpc status message:'
        " ErrImagePull or ImagePullBackOff)",
        "[1.28] (kubelet-facts.md) and [search] in trees with and without ctx (1.2x-1.3x);"
        " per-version tags not read",
    ),
    MessageRow(
        "BackOff",
        "Normal",
        "Pod",
        "Back-off pulling image %q",
        _SPAN,
        _IM + " (the event's type is Normal; [main] appends the last error only to the"
        " pod status message, not to the event)",
        _INFERRED,
    ),
    MessageRow(
        "Pulled",
        "Normal",
        "Pod",
        "Successfully pulled image %q in %v",
        "1.24-1.25 (their patch releases from early 2023 took the next form: cherry-picks"
        " #114272 release-1.24, #114271 release-1.25; which patch first is not verified)",
        _IM,
        "read at [k8s@00a3928]; added in 1.19 by kubernetes#91563",
    ),
    MessageRow(
        "Pulled",
        "Normal",
        "Pod",
        "Successfully pulled image %q in %v (%v including waiting)",
        "1.26-1.29 (1.26 inferred: kubernetes#111772 merged on master with no release-1.26"
        " cherry-pick; present at v1.27.0-rc.0 puller.go and at [1.28])",
        _IM,
        "kubernetes#111772 and its cherry-picks; [1.28] (kubelet-facts.md section 7)",
    ),
    MessageRow(
        "Pulled",
        "Normal",
        "Pod",
        "Successfully pulled image %q in %v (%v including waiting). Image size: %v bytes.",
        "1.30-1.35 (kubernetes#121719, in the 1.30 changelog; the image-size text inferred"
        " to come with its metric: no tree has one without the other)",
        _IM,
        "[main] stlaz/kubernetes@924d651; kubernetes#121719",
    ),
    MessageRow(
        "Pulled",
        "Normal",
        "Pod",
        "Container image %q already present on machine",
        _SPAN,
        _IM,
        _INFERRED,
    ),
    MessageRow(
        "FreeDiskSpaceFailed",
        "Warning",
        "Node",
        "failed to garbage collect required amount of images. Wanted to free %d bytes,"
        " but freed %d bytes",
        "1.24-1.25",
        "pkg/kubelet/images/image_gc_manager.go GarbageCollect",
        "[1.20] TracingSource/kubernetes@a3be89d (kubelet-facts.md); reworded in 1.26 by"
        " kubernetes#112631 (v1.26.0 changelog: 'Reworded log message upon image garbage"
        " collection failure')",
    ),
    MessageRow(
        "FreeDiskSpaceFailed",
        "Warning",
        "Node",
        "Failed to garbage collect required amount of images. Attempted to free %d bytes,"
        " but only found %d bytes eligible to free.",
        "1.26-1.35",
        "pkg/kubelet/images/image_gc_manager.go GarbageCollect",
        "kubernetes#112631 (1.26); read at [1.28] and [main] stlaz@6d684ab",
    ),
    MessageRow(
        "ImageGCFailed",
        "Warning",
        "Node",
        "%v",
        _SPAN,
        "pkg/kubelet/kubelet.go StartGarbageCollection (%v is GarbageCollect's error: the"
        " FreeDiskSpaceFailed text, 'invalid capacity 0 on image filesystem', or 'wanted to"
        " free %d bytes, but freed %d bytes space with errors in image deletion: %v'; sent"
        " only on the second failure in a row)",
        "[search] in trees with klog.ErrorS and with logger.Error (1.2x and >=1.3x)",
    ),
    MessageRow(
        "InvalidDiskCapacity",
        "Warning",
        "Node",
        "invalid capacity 0 on image filesystem",
        _SPAN,
        "pkg/kubelet/images/image_gc_manager.go GarbageCollect",
        "[main] stlaz@6d684ab and kubelet-facts.md section 1; others inferred",
    ),
    MessageRow(
        "Evicted",
        "Warning",
        "Pod",
        "The node was low on resource: %v. Threshold quantity: %v, available: %v. "
        "Container %s was using %s, request is %s, has larger consumption of %v. ",
        "newer versions (first not verified)",
        "pkg/kubelet/eviction/helpers.go evictionMessage",
        "[search] (a tree quoting master's helpers.go); older trees write 'Container %s"
        " was using %s, which exceeds its request of %s. ' ([search]); boundary not"
        " verified",
    ),
    MessageRow(
        "Evicted",
        "Warning",
        "Pod",
        "Container %s exceeded its local ephemeral storage limit %q. ",
        _SPAN,
        "pkg/kubelet/eviction/eviction_manager.go (containerEphemeralStorageMessageFmt)",
        "[search]; per-version tags not read",
    ),
    MessageRow(
        "Evicted",
        "Warning",
        "Pod",
        "Pod ephemeral local storage usage exceeds the total limit of containers %s. ",
        _SPAN,
        "pkg/kubelet/eviction/helpers.go (podEphemeralStorageMessageFmt)",
        "[search]; per-version tags not read",
    ),
    MessageRow(
        "Starting",
        "Normal",
        "Node",
        "Starting kubelet.",
        _SPAN,
        "pkg/kubelet/kubelet.go BirthCry",
        "[search] in many trees (api.EventTypeNormal and v1.EventTypeNormal eras)",
    ),
    MessageRow(
        "Killing",
        "Normal",
        "Pod",
        "Stopping container %s",
        _SPAN,
        "pkg/kubelet/kuberuntime/kuberuntime_container.go killContainer (default message)",
        "[search] in trees with and without ctx; per-version tags not read",
    ),
)

# The runtime's error text inside "Failed to pull image %q: %v". {image} is the reference.
ERRORS: dict[str, tuple[str, str]] = {
    # name: (text, where it comes from)
    "containerd-progress-timeout": (
        'rpc error: code = Canceled desc = failed to pull and unpack image "{image}":'
        " context canceled",
        "kubernetes#131521 logs (kubelet-facts.md section 4): containerd's CRI PullImage"
        " after its image_pull_progress_timeout cancelled the pull",
    ),
    "kubelet-canceled": (
        "rpc error: code = Canceled desc = context canceled",
        "grpc-go's status text for a call whose client context was cancelled (pod deleted,"
        " kubelet shutting down); composed from grpc's 'rpc error: code = %s desc = %s'",
    ),
    "auth-401": (
        'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": failed'
        ' to resolve reference "{image}": failed to authorize: failed to fetch anonymous'
        " token: unexpected status from GET request to"
        " https://auth.example.com/token?scope=repository%3Aml%2Ftrain%3Apull: 401"
        " Unauthorized",
        "composed from containerd's resolver/authorizer error texts (not read per tag)",
    ),
    "auth-denied": (
        'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": failed'
        ' to resolve reference "{image}": pull access denied, repository does not exist or'
        " may require authorization: server message: insufficient_scope: authorization"
        " failed",
        "composed from containerd's resolver error text (not read per tag)",
    ),
    "not-found": (
        'rpc error: code = NotFound desc = failed to pull and unpack image "{image}":'
        ' failed to resolve reference "{image}": {image}: not found',
        "composed from containerd's resolver error text (not read per tag)",
    ),
    "manifest-unknown": (
        'rpc error: code = Unknown desc = failed to pull and unpack image "{image}":'
        ' failed to resolve reference "{image}": unexpected status code'
        " [manifests 1.0]: 404 Not Found (MANIFEST_UNKNOWN: manifest unknown)",
        "composed (distribution's error code MANIFEST_UNKNOWN)",
    ),
    "disk-full": (
        'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": failed'
        " to extract layer sha256:5f3ca9e4d82e32203c2fafb410dfae9c8047bc6ebe57d642fe264d479e1"
        "52955: write /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/"
        "412/fs/usr/lib/libcudnn.so.9: no space left on device: unknown",
        "composed from containerd's unpack error texts and ENOSPC",
    ),
    "qps": (
        "pull QPS exceeded",
        "pkg/kubelet/images/throttled_puller.go ([search]); the kubelet's own error",
    ),
    "unreachable": (
        'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": failed'
        ' to resolve reference "{image}": failed to do request: Head'
        ' "https://registry.example.com/v2/ml/train/manifests/v3": dial tcp'
        " 10.20.0.5:443: i/o timeout",
        "composed from containerd's resolver and Go's net error texts",
    ),
    "crio-progress-timeout": (
        "rpc error: code = Unknown desc = Timed out on waiting up to 10s for image pull"
        " progress updates",
        "composed: cri-o server/image_pull.go logs this line ([search]) and cancels; the"
        " kubelet usually sees 'context canceled' (the journal has this line)",
    ),
}


def go_quote(text: str) -> str:
    """Go's %q for the printable ASCII an image reference is made of."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def stamp(t: datetime) -> str:
    """metav1.Time as the API writes it: whole seconds, Z."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def failed_message(image: str, error: str) -> str:
    """The Failed event's message (the same format 1.24-1.35, see the table)."""
    return f"Failed to pull image {go_quote(image)}: {error.format(image=image)}"


def pulled_message(version: tuple[int, int], image: str, seconds: float, size: int) -> str:
    """The Pulled message in the form the table has for ``version`` (x.0 releases: 1.26
    took "including waiting", 1.30 the image size; see the table for what is inferred)."""
    took = format_go_duration(seconds)
    if version < (1, 26):
        return f"Successfully pulled image {go_quote(image)} in {took}"
    if version < (1, 30):
        return f"Successfully pulled image {go_quote(image)} in {took} ({took} including waiting)"
    return (
        f"Successfully pulled image {go_quote(image)} in {took} ({took} including waiting)."
        f" Image size: {size} bytes."
    )


def _name(base: str, t: datetime, salt: str) -> str:
    # client-go names an event <object>.<hex of the creation time in ns>; salted so two
    # events of one object at one second differ.
    ns = int(t.timestamp() * 1e9)
    digest = hashlib.sha256(f"{base}{salt}".encode()).hexdigest()[:4]
    return f"{base}.{ns:x}{digest}"[:253]


def event(
    *,
    namespace: str,
    involved: dict[str, Any],
    reason: str,
    message: str,
    type_: str,
    node: str,
    first: datetime,
    last: datetime | None = None,
    count: int = 1,
    salt: str = "",
) -> dict[str, Any]:
    """A core/v1 Event as ``kubectl get events -o json`` shows it."""
    last = last or first
    name = _name(str(involved["name"]), first, reason + message + salt)
    uid_src = hashlib.sha256(name.encode()).hexdigest()
    uid = f"{uid_src[:8]}-{uid_src[8:12]}-{uid_src[12:16]}-{uid_src[16:20]}-{uid_src[20:32]}"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": str(int(last.timestamp()) % 10_000_000),
            "creationTimestamp": stamp(first),
        },
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": {"component": "kubelet", "host": node},
        "firstTimestamp": stamp(first),
        "lastTimestamp": stamp(last),
        "count": count,
        "type": type_,
        "eventTime": None,
        "reportingComponent": "kubelet",
        "reportingInstance": node,
    }


def pod_event(
    namespace: str,
    pod: str,
    container: str,
    node: str,
    reason: str,
    message: str,
    first: datetime,
    *,
    type_: str = "Normal",
    last: datetime | None = None,
    count: int = 1,
) -> dict[str, Any]:
    uid = hashlib.sha256(f"{namespace}/{pod}".encode()).hexdigest()
    involved = {
        "kind": "Pod",
        "namespace": namespace,
        "name": pod,
        "uid": f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:32]}",
        "apiVersion": "v1",
        "resourceVersion": "4242",
        "fieldPath": f"spec.containers{{{container}}}",
    }
    return event(
        namespace=namespace,
        involved=involved,
        reason=reason,
        message=message,
        type_=type_,
        node=node,
        first=first,
        last=last,
        count=count,
    )


def node_event(
    node: str,
    reason: str,
    message: str,
    first: datetime,
    *,
    type_: str = "Warning",
    last: datetime | None = None,
    count: int = 1,
) -> dict[str, Any]:
    """A kubelet event about its Node: namespace "default", involvedObject.uid = the node
    name (the kubelet's nodeRef carries the name as UID)."""
    involved = {"kind": "Node", "name": node, "uid": node}
    return event(
        namespace="default",
        involved=involved,
        reason=reason,
        message=message,
        type_=type_,
        node=node,
        first=first,
        last=last,
        count=count,
    )


def pull_story(
    *,
    node: str,
    namespace: str,
    pod: str,
    container: str,
    image: str,
    error: str,
    t0: datetime,
    fail_after_seconds: float,
    attempts: int = 1,
    backoff_seconds: float = 10.0,
) -> list[dict[str, Any]]:
    """Pulling at t0, Failed (the error) at t0 + fail_after, Failed "Error: ErrImagePull",
    then BackOff and Failed "Error: ImagePullBackOff"; ``attempts`` > 1 repeats the pull
    after each back-off, as the kubelet's event correlator aggregates it (one object per
    message, count and lastTimestamp updated)."""
    took = timedelta(seconds=fail_after_seconds)
    starts = [t0]
    for i in range(1, attempts):
        wait = timedelta(seconds=min(300.0, backoff_seconds * 2 ** (i - 1)))
        starts.append(starts[-1] + took + wait)
    fails = [s + took for s in starts]
    msg = failed_message(image, error)
    args = (namespace, pod, container, node)
    out = [
        pod_event(
            *args,
            "Pulling",
            f"Pulling image {go_quote(image)}",
            starts[0],
            last=starts[-1],
            count=attempts,
        ),
        pod_event(*args, "Failed", msg, fails[0], type_="Warning", last=fails[-1], count=attempts),
        pod_event(
            *args,
            "Failed",
            "Error: ErrImagePull",
            fails[0],
            type_="Warning",
            last=fails[-1],
            count=attempts,
        ),
        pod_event(
            *args,
            "BackOff",
            f"Back-off pulling image {go_quote(image)}",
            fails[0] + timedelta(seconds=1),
            last=fails[-1] + timedelta(seconds=1),
            count=attempts,
        ),
        pod_event(
            *args,
            "Failed",
            "Error: ImagePullBackOff",
            fails[0] + timedelta(seconds=1),
            type_="Warning",
            last=fails[-1] + timedelta(seconds=1),
            count=attempts,
        ),
    ]
    return out
