"""``mpsv3 export kubernetes``: a Deployment and a Service per mpsv3 service, a Job per task.

Every mapping from a validated ``Config`` to Kubernetes objects lives here (``docs/export.md``
tells users what carries over); the probes are ``k8s_probes``. The function is pure: it builds
text, one ``<name>.yaml`` per service.

The mapping:

* The container (``containers.plan_containers``): the project image (built from the generated
  ``Containerfile``; Kubernetes does not build, so it must be pushed where the cluster pulls)
  or the service's own; the command -> ``command``; the cwd -> ``workingDir`` under ``/app``;
  ``env`` plus ``export.env`` -> ``env``; ``ports`` -> ``containerPort`` and the Service's
  ports; ``export.volumes`` -> a PersistentVolumeClaim each (in the file of the first service
  that mounts it) and ``volumeMounts``. Peers are reached by Service name: the id with ``_``
  as ``-`` (the export sets every ``<ID>_HOST`` to it). ``enableServiceLinks`` is off so that
  no ``<SERVICE>_PORT`` variable injected by Kubernetes shadows the stack's own.
* ``requires`` -> one init container per dependency that waits until the dependency's Service
  name resolves. The Services are headless (``clusterIP: None``): their DNS name answers only
  once a pod of theirs is *ready*, so the wait is a readiness gate, not a mere existence check.
* ``kind: task`` -> a Job (``backoffLimit`` = ``max_retries`` - 1); its dependents do not wait
  for it (a warning): Kubernetes has no "after that Job" for a Deployment.
* ``replicas`` -> ``replicas`` (0 when ``enabled: false``), with the ``Recreate`` strategy (a
  replica of the old version never runs beside the new one); ``stop.grace_s`` ->
  ``terminationGracePeriodSeconds``; a numeric ``user``/``group`` -> ``runAsUser``/
  ``runAsGroup``; ``limits.memory_mb`` -> ``resources.limits.memory``.

Kubernetes expands ``$(VAR)`` in a container's command and env values and reads ``$$`` as a
literal ``$``; a ``$`` from the config that precedes ``(`` or ``$`` is written ``$$``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mpsv3.config.schema import Config, ServiceSpec
from mpsv3.config.schema_export import VolumeMount
from mpsv3.errors import EXIT_FAILURE
from mpsv3.export.containers import Container, built_image, plan_containers
from mpsv3.export.k8s_probes import probes, whole_seconds_warned
from mpsv3.export.model import ExportError, ExportResult, Warnings, dump_yaml, stack_name
from mpsv3.policy.backoff import EXIT_HOT_RELOAD, EXIT_SELF_QUARANTINE

__all__ = ["CLAIM_SIZE", "DEFAULT_WAIT_IMAGE", "export", "object_name"]

TARGET = "Kubernetes"

#: The wait image when no service runs the project image (needs ``sh`` and ``nslookup``).
DEFAULT_WAIT_IMAGE = "busybox:1.36"
#: The storage a PersistentVolumeClaim requests.
CLAIM_SIZE = "1Gi"

_NAME_LABEL = "app.kubernetes.io/name"
_PART_OF_LABEL = "app.kubernetes.io/part-of"
_MAX_NAME = 63


def object_name(service_id: str) -> str:
    """The object (and DNS) name of a service or volume: a DNS label (``ws_api`` -> ``ws-api``).

    Names must start with a letter; one that starts with a digit gets ``svc-``.
    """
    name = re.sub(r"[_.]", "-", service_id).strip("-")
    if not name or not name[0].isalpha():
        name = f"svc-{name}".rstrip("-")
    return name


def export(
    config: Config,
    *,
    images: Mapping[str, str] | None = None,
    default_image: str | None = None,
    wait_image: str | None = None,
    host_paths: Sequence[str] = (),
) -> ExportResult:
    """The Kubernetes objects of a stack: ``<name>.yaml`` per service.

    Args:
        config: the validated config, loaded with ``containers.container_variables``.
        images: images of their own by service id (``--image ID=IMAGE``).
        default_image: the project image's name (``--image IMAGE``).
        wait_image: the image of the init containers that wait for dependencies (default: the
            project image when a service runs it, else ``DEFAULT_WAIT_IMAGE``).
        host_paths: host folders that must not appear in the output.

    Raises:
        ExportError: an image names an unknown service, a host path would leak, or two ids
            map to one object name or a name is too long for Kubernetes (exit 1).
    """
    names = _object_names(config)
    warn = Warnings(TARGET)
    plans = plan_containers(config, images=images, default_image=default_image, host_paths=host_paths, warn=warn)
    project = built_image(plans.values())
    waiter = wait_image or project or DEFAULT_WAIT_IMAGE
    labels_of = {
        spec.id: {_NAME_LABEL: names[spec.id], _PART_OF_LABEL: _label_value(stack_name(config))}
        for spec in config.services
    }
    claimed: set[str] = set()
    files: dict[str, str] = {}
    for spec in config.services:
        labels = labels_of[spec.id]
        documents = _claims(spec, plans[spec.id], labels, claimed, warn)
        pod = _pod(config, spec, plans[spec.id], names, waiter, labels, warn)
        if spec.kind == "task":
            documents.append(_job(spec, names[spec.id], labels, pod))
        else:
            documents += [_deployment(spec, names[spec.id], labels, pod), _service(spec, names[spec.id], labels)]
        header = f"# Generated by mpsv3 export kubernetes from {config.path.name} (service {spec.id}); edit the config instead.\n"
        files[f"{names[spec.id]}.yaml"] = header + dump_yaml(documents)
    _stack_warnings(config, warn)
    return ExportResult(files=files, warnings=warn.lines, project_image=project)


def _stack_warnings(config: Config, warn: Warnings) -> None:
    warn.stack(
        f"exit code {EXIT_HOT_RELOAD} (hot reload) has no equivalent in Kubernetes; the kubelet"
        " restarts it like a crash, with CrashLoopBackOff"
    )
    warn.stack(
        f"exit code {EXIT_SELF_QUARANTINE} (self-quarantine) has no equivalent in Kubernetes;"
        " the kubelet restarts it like a crash"
    )
    if config.stack.alert_cmd:
        warn.stack("alert_cmd has no equivalent in Kubernetes; dropped")


def _object_names(config: Config) -> dict[str, str]:
    names: dict[str, str] = {}
    owner: dict[str, str] = {}
    for spec in config.services:
        name = object_name(spec.id)
        if len(name) > _MAX_NAME:
            raise ExportError(
                f'service "{spec.id}": the Kubernetes name {name!r} is longer than'
                f" {_MAX_NAME} characters; shorten the id",
                EXIT_FAILURE,
            )
        if name in owner:
            raise ExportError(
                f'services "{owner[name]}" and "{spec.id}" both become the Kubernetes name'
                f" {name!r}; rename one",
                EXIT_FAILURE,
            )
        owner[name] = spec.id
        names[spec.id] = name
    return names


def _label_value(text: str) -> str:
    """A label value: at most 63 of ``[A-Za-z0-9_.-]``, starting and ending alphanumeric."""
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:_MAX_NAME]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value) or "mpsv3"


# -------------------------------------------------------------------------------- objects


def _pod(
    config: Config,
    spec: ServiceSpec,
    plan: Container,
    names: Mapping[str, str],
    wait_image: str,
    labels: dict[str, str],
    warn: Warnings,
) -> dict[str, Any]:
    """The pod template: its labels and spec (init containers, the container, volumes)."""
    pod: dict[str, Any] = {
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": whole_seconds_warned(
            spec, "stop grace", spec.stop.grace_s, warn, minimum=0
        ),
    }
    security = _security(spec, warn)
    if security:
        pod["securityContext"] = security
    waits = []
    for dep in spec.requires:
        if config.stack.service(dep).kind == "task":
            warn.service(spec.id, f"does not wait for the task {dep} (a Job) in Kubernetes")
        else:
            waits.append(_wait_for(names[dep], wait_image))
    if waits:
        pod["initContainers"] = waits
    pod["containers"] = [_container(spec, plan, names[spec.id], warn)]
    if plan.mounts:
        pod["volumes"] = [
            {
                "name": object_name(m.name),
                "persistentVolumeClaim": {"claimName": object_name(m.name)},
            }
            for m in plan.mounts
        ]
    _service_warnings(spec, warn)
    return {"metadata": {"labels": dict(labels)}, "spec": pod}


def _container(spec: ServiceSpec, plan: Container, name: str, warn: Warnings) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": plan.image}
    if plan.command is not None:
        container["command"] = [_dollars(word) for word in plan.command]
    if plan.workdir is not None:
        container["workingDir"] = plan.workdir
    if plan.env:
        container["env"] = [{"name": k, "value": _dollars(v)} for k, v in plan.env.items()]
    if spec.ports:
        container["ports"] = [{"containerPort": port} for port in spec.ports]
    container.update(probes(spec, warn))
    if plan.mounts:
        container["volumeMounts"] = [_mount(m) for m in plan.mounts]
    if spec.limits is not None:
        container["resources"] = {"limits": {"memory": f"{spec.limits.memory_mb}Mi"}}
    return container


def _mount(mount: VolumeMount) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": object_name(mount.name), "mountPath": mount.path}
    if mount.read_only:
        entry["readOnly"] = True
    return entry


def _security(spec: ServiceSpec, warn: Warnings) -> dict[str, int]:
    context: dict[str, int] = {}
    for key, field, value in (
        ("runAsUser", "user", spec.user),
        ("runAsGroup", "group", spec.group),
    ):
        if value is None:
            continue
        if value.isdigit():
            context[key] = int(value)
        else:
            warn.service(
                spec.id,
                f"{field} {value!r}: Kubernetes takes a numeric id ({key}); dropped (set the"
                " image's USER, or a number)",
            )
    return context


def _claims(
    spec: ServiceSpec,
    plan: Container,
    labels: dict[str, str],
    claimed: set[str],
    warn: Warnings,
) -> list[dict[str, Any]]:
    """A PersistentVolumeClaim per volume this service is the first to mount."""
    claims = []
    for mount in plan.mounts:
        name = object_name(mount.name)
        if name in claimed:
            warn.service(
                spec.id,
                f"volume {mount.name} is shared: its claim is ReadWriteOnce, so the pods that"
                " mount it must run on one node",
            )
            continue
        claimed.add(name)
        claims.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "labels": dict(labels)},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": CLAIM_SIZE}},
                },
            }
        )
    return claims


def _deployment(
    spec: ServiceSpec, name: str, labels: dict[str, str], pod: dict[str, Any]
) -> dict[str, Any]:
    replicas = (spec.replicas or 1) if spec.enabled else 0
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": dict(labels)},
            "template": pod,
        },
    }


def _job(
    spec: ServiceSpec, name: str, labels: dict[str, str], pod: dict[str, Any]
) -> dict[str, Any]:
    never = spec.restart.policy == "never"
    template = {**pod, "spec": {**pod["spec"], "restartPolicy": "Never" if never else "OnFailure"}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "backoffLimit": 0 if never else spec.restart.max_retries - 1,
            "template": template,
        },
    }


def _service(spec: ServiceSpec, name: str, labels: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"clusterIP": "None", "selector": dict(labels)}
    if spec.ports:
        body["ports"] = [
            {"name": f"port-{port}", "port": port, "targetPort": port} for port in spec.ports
        ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": body,
    }


def _wait_for(dependency: str, wait_image: str) -> dict[str, Any]:
    """An init container that returns once the dependency's headless Service resolves.

    The name is qualified with the pod's namespace when Kubernetes mounts it (busybox's
    ``nslookup`` does not use the search list); ``getent`` (glibc images) is tried first. The
    script has no ``$(`` and no ``$$``, which Kubernetes would rewrite and podman would not.
    """
    script = (
        "ns=`cat /var/run/secrets/kubernetes.io/serviceaccount/namespace 2>/dev/null`;"
        f' host="{dependency}${{ns:+.$ns.svc.cluster.local}}";'
        ' until getent hosts "$host" >/dev/null 2>&1 || nslookup "$host" >/dev/null 2>&1;'
        f" do echo waiting for {dependency}; sleep 2; done"
    )
    return {
        "name": f"wait-{dependency}"[:_MAX_NAME],
        "image": wait_image,
        "command": ["sh", "-c", script],
    }


def _service_warnings(spec: ServiceSpec, warn: Warnings) -> None:
    restart = spec.restart
    if spec.kind != "task" and restart.policy != "always":
        warn.dropped(
            spec.id,
            f"restart policy {restart.policy}",
            "a Deployment restarts its container after every exit",
        )
    if spec.kind != "task" and restart.policy != "never":
        backoff = restart.backoff
        warn.dropped(
            spec.id,
            f"restart backoff (base {backoff.base_ms}ms x{backoff.factor:g} up to"
            f" {backoff.max_ms}ms, quarantine after {restart.max_retries})",
            "the kubelet's CrashLoopBackOff applies (10s doubling to 5m, no limit)",
        )
    if spec.stop.signal != "SIGTERM":
        warn.dropped(
            spec.id,
            f"stop signal {spec.stop.signal}",
            "SIGTERM is sent (or the image's STOPSIGNAL)",
        )
    if spec.watch is not None:
        warn.dropped(spec.id, "watch")
    if spec.profiles:
        warn.dropped(spec.id, f"profiles {', '.join(spec.profiles)}", "the objects are written")
    if spec.env_file:
        warn.dropped(spec.id, "env_file", "dropped (put its values in a ConfigMap)")


def _dollars(text: str) -> str:
    """Escape ``$`` where Kubernetes would expand it: before ``(`` (``$(VAR)``) or ``$``."""
    return re.sub(r"\$(?=[($])", "$$", text)
