"""Data for scripts/profile.sh: a campaign, coupons to allocate, coupons to redeem and
discount codes to use, each list written one per line for wrk's Lua scripts to walk."""
import json
import sys
import urllib.error
import urllib.request

url, key, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def call(path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        sys.exit(f"POST {path}: {e.code} {e.read().decode(errors='replace')[:300]}")


campaign = call("/api/v1/campaigns", {"name": "profile", "start_time": "2020-01-01T00:00:00Z",
                                      "total_coupons": 10_000_000})
open(f"{out}/campaign", "w").write(str(campaign["id"]))

# STANDARD coupons are allocated (one new user each); FREE ones redeemed by code.
for kind, prefix in (("STANDARD", "PA"), ("FREE", "PR")):
    codes = [f"{prefix}{i:09d}" for i in range(n)]
    for at in range(0, n, 50_000):
        call("/api/v1/coupons", {"coupons": [
            {"code": c, "type": kind, "discount_kind": "PERCENTAGE", "discount_amount": 10,
             "expires_at": "2099-01-01T00:00:00Z", "max_uses": 1} for c in codes[at:at + 50_000]]})
    if kind == "FREE":
        open(f"{out}/redeem.txt", "w").write("\n".join(codes) + "\n")

codes = []
while len(codes) < n:
    codes += call("/api/v1/discount-codes/batches", {"count": 2000, "length": 8})["codes"]
open(f"{out}/use.txt", "w").write("\n".join(codes) + "\n")
