"""The pure parts of the kind tooling: the runtime wrapper's capability filtering and argument
parsing, daemon.json merging, kind's cluster configuration (tests/kind runs the rest for real)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tunefleet_dev import engine, runc_hostcaps
from tunefleet_dev.kind import Cluster, Node, manifest_images
from tunefleet_dev.kindimage import COREDNS, storage_manifest

# This machine's: every capability but CAP_SYS_RESOURCE (bit 24).
WITHOUT_SYS_RESOURCE = "CapBnd:\t000001fffeffffff\n"


def test_bounding_set_and_what_it_lacks() -> None:
    mask = runc_hostcaps.bounding_set("Name:\tx\n" + WITHOUT_SYS_RESOURCE)
    assert runc_hostcaps.missing(mask) == {"CAP_SYS_RESOURCE"}
    assert runc_hostcaps.missing((1 << 41) - 1) == frozenset()
    with pytest.raises(ValueError):
        runc_hostcaps.bounding_set("Name:\tx\n")


def test_strip_removes_only_what_the_host_lacks() -> None:
    everything = [f"CAP_{name}" for name in runc_hostcaps.CAPABILITIES]
    process: dict[str, object] = {
        "capabilities": {s: list(everything) for s in ("bounding", "effective", "permitted")}
    }
    assert runc_hostcaps.strip(process, {"CAP_SYS_RESOURCE"})
    caps = process["capabilities"]
    assert isinstance(caps, dict)
    for values in caps.values():
        assert values == [c for c in everything if c != "CAP_SYS_RESOURCE"]
    # A container that asks only for what the host has is left as it is.
    plain: dict[str, object] = {"capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"]}}
    assert not runc_hostcaps.strip(plain, {"CAP_SYS_RESOURCE"})
    assert plain == {"capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"]}}
    assert not runc_hostcaps.strip({}, {"CAP_SYS_RESOURCE"})


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--root", "/r", "--log", "l", "--systemd-cgroup", "create", "--bundle", "/b", "id"],
         (Path("/b/config.json"), True)),
        (["run", "-b=/x", "id"], (Path("/x/config.json"), True)),
        (["--root", "/r", "exec", "--process", "/p.json", "--detach", "id"],
         (Path("/p.json"), False)),
        (["--root", "/r", "start", "id"], None),
        (["--root", "/r", "exec", "id", "true"], None),
        ([], None),
    ],
)  # fmt: skip
def test_target_finds_the_process_a_runc_call_starts(
    argv: list[str], expected: tuple[Path, bool] | None
) -> None:
    assert runc_hostcaps.target(argv) == expected


def test_rewrite_edits_a_bundle_in_place(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    caps = {"bounding": ["CAP_SYS_ADMIN", "CAP_SYS_RESOURCE"]}
    document = {"process": {"capabilities": caps}, "root": {"path": "rootfs"}}
    config.write_text(json.dumps(document))
    assert runc_hostcaps.rewrite(config, True, {"CAP_SYS_RESOURCE"})
    written = json.loads(config.read_text())
    assert written["process"]["capabilities"]["bounding"] == ["CAP_SYS_ADMIN"]
    assert written["root"] == {"path": "rootfs"}
    assert not runc_hostcaps.rewrite(config, True, {"CAP_SYS_RESOURCE"})
    assert list(tmp_path.iterdir()) == [config]


def test_daemon_config_keeps_what_is_there() -> None:
    current = {"log-level": "warn", "runtimes": {"other": {"path": "/usr/bin/other"}}}
    merged = engine.daemon_config(current)
    assert merged["log-level"] == "warn"
    assert merged["default-runtime"] == engine.HOSTCAPS_RUNTIME
    assert merged["runtimes"] == {
        "other": {"path": "/usr/bin/other"},
        engine.HOSTCAPS_RUNTIME: {"path": str(engine.HOSTCAPS_PATH)},
    }
    assert engine.daemon_config(merged) == merged
    script = engine.hostcaps_script()
    assert script.startswith("#!/") and " -I\n" in script.splitlines()[0] + "\n"


def test_cluster_config_names_pools_labels_and_taints() -> None:
    cluster = Cluster(
        "tfkind-x",
        (
            Node(labels={"cloud.google.com/gke-nodepool": "default-pool"}, taints=()),
            Node("worker", {"cloud.google.com/gke-spot": "true"},
                 ("cloud.google.com/gke-spot=true:NoSchedule",)),
        ),
    )  # fmt: skip
    config = json.loads(cluster.config("tunefleet-local/kind-node:v1.31.14"))
    assert config["name"] == "tfkind-x" and cluster.context == "kind-tfkind-x"
    control, worker = config["nodes"]
    assert control["role"] == "control-plane"
    # No taint at all, not kubeadm's NoSchedule: the control plane takes pods.
    assert [json.loads(p) for p in control["kubeadmConfigPatches"]] == [
        {"kind": "InitConfiguration", "nodeRegistration": {"taints": []}}
    ]
    assert control["image"] == worker["image"] == "tunefleet-local/kind-node:v1.31.14"
    (patch,) = worker["kubeadmConfigPatches"]
    assert json.loads(patch) == {
        "kind": "JoinConfiguration",
        "nodeRegistration": {"taints": [
            {"key": "cloud.google.com/gke-spot", "value": "true", "effect": "NoSchedule"}]},
    }  # fmt: skip
    # kind's own node image where it can be pulled: no image named.
    (alone,) = json.loads(Cluster().config(None))["nodes"]
    assert "image" not in alone and "kubeadmConfigPatches" not in alone
    assert "containerdConfigPatches" not in config
    without = json.loads(Cluster().config(None, frozenset({"CAP_SYS_RESOURCE"})))
    (patch,) = without["containerdConfigPatches"]
    assert "restrict_oom_score_adj = true" in patch


def test_the_manifests_third_party_images_are_found() -> None:
    found = manifest_images()
    assert found["RABBITMQ_IMAGE"].startswith("rabbitmq:3.13.7-management@sha256:")
    assert found["MONGO_IMAGE"].startswith("mongo:7.0.14@sha256:")


def test_coredns_main_registers_each_directive_it_imports() -> None:
    main = COREDNS.main
    assert "plugin/metrics" in main and '"prometheus"' in main
    assert main.count('_ "github.com/coredns/coredns/plugin/') == main.count('", "') + 1


def test_storage_manifest_makes_local_volumes(tmp_path: Path) -> None:
    """kind's manifest, its two images replaced and the class making `local` volumes."""
    go = tmp_path / "pkg" / "build" / "nodeimage"
    go.mkdir(parents=True)
    (go / "const_storage.go").write_text(
        'package nodeimage\nconst storageProvisionerImage = "a/p:1"\n'
        "const defaultStorageManifest = `kind: StorageClass\nmetadata:\n  annotations:\n"
        '    storageclass.kubernetes.io/is-default-class: "true"\nimage: ` + '
        "storageProvisionerImage + `\nhelper: ` + storageHelperImage + `\n`\n"
    )
    text = storage_manifest(tmp_path)
    assert "defaultVolumeType: local\n" in text
    assert "image: tunefleet.local/local-path-provisioner:" in text
    assert "helper: tunefleet.local/local-path-helper:" in text
    (go / "const_storage.go").write_text("const defaultStorageManifest = `x`\n")
    with pytest.raises(engine.ToolError):
        storage_manifest(tmp_path)
