"""Installs a chart with the real Helm library, then lists the releases.

Usage: install_and_list.py KUBECONFIG NAMESPACE RELEASE CHART_DIR
Prints one JSON object: {"install": <release>, "list": [<release>, ...]}.
Any Helm error goes to stderr and exits 1.
"""

import asyncio
import json
import sys

import helm_sdkpy


async def main(kubeconfig, namespace, release, chart):
    config = helm_sdkpy.Configuration(namespace=namespace, kubeconfig=kubeconfig)
    installed = await helm_sdkpy.Install(config).run(
        release, chart, values={"greeting": "hello"}, wait=True, timeout=60
    )
    releases = await helm_sdkpy.List(config).run(all=True)
    print(json.dumps({"install": installed, "list": releases}, default=str))


if __name__ == "__main__":
    try:
        asyncio.run(main(*sys.argv[1:5]))
    except helm_sdkpy.HelmError as e:
        print(f"helm: {e}", file=sys.stderr)
        sys.exit(1)
