"""Shared pytest set-up: make this checkout importable as ansible_collections.multipath.mptcp."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".collections")
if not os.path.isdir(os.path.join(COLLECTIONS, "ansible_collections", "multipath", "mptcp")):
    raise RuntimeError("run scripts/bootstrap.sh first: it links this checkout as multipath.mptcp")
sys.path.insert(0, COLLECTIONS)
