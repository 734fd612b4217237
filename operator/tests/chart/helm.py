"""Drives the real Helm library (helm-sdkpy) for operator/tests/chart.rs.

A session on stdin/stdout, one JSON object per line. The first line is the
configuration: {"kubeconfig": path or null, "namespace": ...}. Every later
line is a step: {"action": "lint"|"install"|"upgrade"|"uninstall"|"list",
"chart": path, "release": name, "values": {...}, "wait": bool, "timeout":
seconds}, answered by one line: {"ok": true, "result": ...} or {"ok":
false, "error": "..."}. Steps run in one process, so the `memory` storage
driver (HELM_DRIVER=memory) keeps releases across them.
"""

import asyncio
import json
import sys

import helm_sdkpy as helm


def run(config, step):
    action = step["action"]
    timeout = step.get("timeout", 120)
    if action == "lint":
        return asyncio.run(helm.Lint(config).run(step["chart"]))
    if action == "install":
        return asyncio.run(
            helm.Install(config).run(
                step["release"],
                step["chart"],
                values=step.get("values"),
                create_namespace=True,
                wait=step.get("wait", True),
                timeout=timeout,
            )
        )
    if action == "upgrade":
        return asyncio.run(
            helm.Upgrade(config).run(
                step["release"],
                step["chart"],
                values=step.get("values"),
                wait=step.get("wait", True),
                timeout=timeout,
                reset_values=True,
            )
        )
    if action == "uninstall":
        return asyncio.run(
            helm.Uninstall(config).run(step["release"], wait=step.get("wait", True), timeout=timeout)
        )
    if action == "list":
        return asyncio.run(helm.List(config).run())
    raise ValueError(f"unknown action {action!r}")


def main():
    request = json.loads(sys.stdin.readline())
    config = helm.Configuration(namespace=request["namespace"], kubeconfig=request.get("kubeconfig"))
    for line in iter(sys.stdin.readline, ""):
        step = json.loads(line)
        try:
            result = run(config, step)
            print(json.dumps({"ok": True, "result": result}, default=str), flush=True)
        except Exception as e:  # reported to the Rust side, which fails the test
            print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}), flush=True)


if __name__ == "__main__":
    main()
