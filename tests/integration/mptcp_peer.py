#!/usr/bin/env python3
"""A minimal MPTCP peer for the integration tests (run inside a network namespace).

  mptcp_peer.py server PORT            accept one MPTCP connection, read to EOF, reply "got N", exit
  mptcp_peer.py client ADDR PORT N     connect, wait until the connection has N extra subflows
                                       (MPTCP_INFO), send 100 kB, half-close, print the reply
"""
import socket
import sys
import time

SOL_MPTCP = 284
MPTCP_INFO = 1


def extra_subflows(sock):
    # struct mptcp_info starts with __u8 mptcpi_subflows (subflows besides the initial one)
    return sock.getsockopt(SOL_MPTCP, MPTCP_INFO, 64)[0]


def server(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("", port))
        listener.listen()
        print("listening", flush=True)
        conn, _ = listener.accept()
        with conn:
            total = 0
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                total += len(data)
            conn.sendall(b"got %d" % total)


def client(addr, port, want):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_MPTCP) as sock:
        sock.settimeout(10)
        sock.connect((addr, port))
        deadline = time.time() + 5
        while extra_subflows(sock) < want and time.time() < deadline:
            time.sleep(0.02)
        seen = extra_subflows(sock)
        sock.sendall(b"x" * 100000)
        sock.shutdown(socket.SHUT_WR)
        reply = sock.recv(100).decode()
        print("%s subflows=%d" % (reply, seen))


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]))
    else:
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
