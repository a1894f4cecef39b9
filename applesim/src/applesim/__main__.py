"""Run Apple's side: python -m applesim --host 127.0.0.1 --port 8001 --state var/applesim.sqlite3"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
from pathlib import Path

from applesim.server import sim_server_new


def main() -> None:
    parser = argparse.ArgumentParser(prog="applesim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--state", default="var/applesim.sqlite3", help="sqlite3 file")
    parser.add_argument(
        "--control-token",
        default=os.environ.get("APPLESIM_CONTROL_TOKEN", ""),
        help="required on /_sim/ as a bearer token (default: $APPLESIM_CONTROL_TOKEN)",
    )
    arguments = parser.parse_args()
    if not arguments.control_token and not _is_loopback(arguments.host):
        # /_sim/ lets anyone play Apple (issue tokens, reset servers): never open to a network.
        parser.error(
            f"--host {arguments.host} is reachable from other machines: set a control token "
            "(APPLESIM_CONTROL_TOKEN or --control-token), or bind to 127.0.0.1."
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    Path(arguments.state).parent.mkdir(parents=True, exist_ok=True)
    server = sim_server_new(
        host=arguments.host,
        port=arguments.port,
        state_path=arguments.state,
        control_token=arguments.control_token,
    )
    host, port = server.server_address[:2]
    logging.getLogger("applesim").info(
        "DEP web service at http://%s:%s/, ABM at http://%s:%s/abm/", host, port, host, port
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.simulator.store.close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    main()
