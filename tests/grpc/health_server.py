"""A real gRPC health server for the registry's gRPC check tests, written with grpcio's own
health service (grpcio-health-checking), on 127.0.0.1 only.

Usage: health_server.py [CERT_PEM KEY_PEM]
With a certificate and key it serves TLS. It prints "port <n>" once listening, then reads one
command a line on stdin and answers "ok" (or "error <why>"):
  set <service> <STATUS>   STATUS: SERVING, NOT_SERVING, SERVICE_UNKNOWN or UNKNOWN;
                           service "-" is the server as a whole ("")
  checks                   how many Check calls arrived so far
It exits when stdin closes.
"""

import sys
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

CHECKS = 0
LOCK = threading.Lock()


class CountingHealth(health.HealthServicer):
    def Check(self, request, context):
        global CHECKS
        with LOCK:
            CHECKS += 1
        return super().Check(request, context)


def main():
    servicer = CountingHealth()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    if len(sys.argv) == 3:
        with open(sys.argv[1], "rb") as cert, open(sys.argv[2], "rb") as key:
            credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
        port = server.add_secure_port("127.0.0.1:0", credentials)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"port {port}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["set"] and len(words) == 3:
            service = "" if words[1] == "-" else words[1]
            try:
                status = health_pb2.HealthCheckResponse.ServingStatus.Value(words[2])
            except ValueError:
                print(f"error unknown status {words[2]}", flush=True)
                continue
            servicer.set(service, status)
            print("ok", flush=True)
        elif words == ["checks"]:
            with LOCK:
                print(f"ok {CHECKS}", flush=True)
        else:
            print("error unknown command", flush=True)
    server.stop(0)


if __name__ == "__main__":
    main()
