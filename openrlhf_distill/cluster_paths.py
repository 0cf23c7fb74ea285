"""Paths that mean the same folder on every node of a run.

Ray workers on other nodes, and a driver started with ``ray job submit`` (which runs in a temporary copy of the
uploaded working folder), do not share this process's working folder: a relative path names another folder
there, or one that is deleted when the job ends. So the commands the pipeline and ``ppo`` build carry absolute
paths, and where a run joins a cluster that may span nodes, a relative path in the user's settings is refused:
it cannot be known to name the folder the user meant. That the folder is on storage every node sees (NFS, a
cluster file system) cannot be checked from one node; the README says so.
"""

from __future__ import annotations

import os

from .model_folders import looks_local

# Set by Ray for the driver of a job started with `ray job submit` (the job's runtime environment, as JSON).
RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
_THIS_MACHINE = {"", "auto", "local", "localhost", "127.0.0.1", "::1"}


def remote_cluster(ray_address: str | None = None) -> str | None:
    """Why relative paths cannot be trusted in this process, or None: the driver of a submitted Ray job (its
    working folder is Ray's temporary copy), or an address (``ray_address``, else ``RAY_ADDRESS``) of a cluster
    on another machine (a ``ray://`` client, another host), where the folder a relative path names here is not
    known to be one the workers see. ``auto`` joins the cluster of this machine, from the user's own folder: its
    relative paths are made absolute, like a local run's."""
    if os.environ.get(RAY_JOB_ENV):
        return "this is a `ray job submit` job, which runs in a temporary copy of its working folder"
    address = ray_address or os.environ.get("RAY_ADDRESS") or ""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if address and host not in _THIS_MACHINE:
        return f"the run joins the Ray cluster at {address}, whose workers on other nodes have other working folders"
    return None


def absolute(
    paths: dict[str, str | None], models: dict[str, str | None] | None = None, ray_address: str | None = None
) -> dict[str, str | None]:
    """Setting name -> absolute path, for ``paths`` (files and folders: always local) and ``models`` (local
    folders or Hub ids: only those that look local are paths); None stays None. A relative path is refused
    (ValueError naming the setting) where `remote_cluster` says relative paths cannot be trusted."""
    reason = remote_cluster(ray_address)
    out = {}
    for name, path in [*paths.items(), *(models or {}).items()]:
        is_path = path and (name in paths or looks_local(path))
        if is_path:
            if reason and not os.path.isabs(os.path.expanduser(path)):
                raise ValueError(
                    f"{name}: relative path {path!r}, but {reason}; give an absolute path on storage every node sees"
                )
            path = os.path.abspath(os.path.expanduser(path))
        out[name] = path
    return out
