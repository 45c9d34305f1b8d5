"""Discount codes for scripts/bench-growth.sh: N codes through the API (POST
/api/v1/discount-codes/batches, 2,000 a call, CALLS_IN_FLIGHT calls at once), written one per
line to OUT for wrk's walk.lua; prints the time taken."""
import json
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

url, key, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
in_flight = int(sys.argv[5]) if len(sys.argv) > 5 else 8


def batch(count):
    req = urllib.request.Request(url + "/api/v1/discount-codes/batches", method="POST",
                                 data=json.dumps({"count": count, "length": 8}).encode())
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read())["codes"]
    except urllib.error.HTTPError as e:
        sys.exit(f"POST batches: {e.code} {e.read().decode(errors='replace')[:300]}")


start = time.monotonic()
sizes = [min(2000, n - at) for at in range(0, n, 2000)]
with ThreadPoolExecutor(in_flight) as pool:
    codes = [c for got in pool.map(batch, sizes) for c in got]
took = time.monotonic() - start
if len(codes) != n or len(set(codes)) != n:
    sys.exit(f"asked {n} codes, got {len(codes)} ({len(set(codes))} distinct)")
open(out, "w").write("\n".join(codes) + "\n")
print(f"{n} codes generated (REST, {in_flight} calls in flight) in {took:.2f} s")
