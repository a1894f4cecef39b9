"""Run Apple's side: python -m applesim --host 127.0.0.1 --port 8001 --state var/applesim.sqlite3"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from applesim.server import sim_server_new


def main() -> None:
    parser = argparse.ArgumentParser(prog="applesim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--state", default="var/applesim.sqlite3", help="sqlite3 file")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    Path(arguments.state).parent.mkdir(parents=True, exist_ok=True)
    server = sim_server_new(host=arguments.host, port=arguments.port, state_path=arguments.state)
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


if __name__ == "__main__":
    main()
