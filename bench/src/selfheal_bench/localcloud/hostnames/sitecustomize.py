"""A SageMaker job's hosts (algo-1, ...) by name, in a job process the local cloud starts.

On SageMaker the hosts of a job resolve each other's names through the container's network; here the local cloud
writes a hosts file (cluster.py) and puts this directory on the job's PYTHONPATH, so the names in it resolve to the
job's loopback addresses for Python's socket functions, and nothing else changes. Runs in the job's process: it must
not import selfheal.
"""

import os
import socket


def _read_hosts(path):
    with open(path, encoding="ascii") as lines:
        return {host: address for address, host in (line.split() for line in lines if line.strip())}


def _install(hosts):
    getaddrinfo, gethostbyname = socket.getaddrinfo, socket.gethostbyname

    def resolved_getaddrinfo(host, *args, **kwargs):
        return getaddrinfo(hosts.get(host, host), *args, **kwargs)

    def resolved_gethostbyname(host):
        return gethostbyname(hosts.get(host, host))

    socket.getaddrinfo, socket.gethostbyname = resolved_getaddrinfo, resolved_gethostbyname


if os.environ.get("SELFHEAL_HOSTS_FILE"):
    _install(_read_hosts(os.environ["SELFHEAL_HOSTS_FILE"]))
