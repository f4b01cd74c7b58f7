#!/usr/bin/env python3
"""Request counts for a live scan of an estate, and the time floor they imply.

  bench/floor.py ESTATE.json [--page-size 100] [--latency-ms 30] [--concurrency 1,4,16]

Two models, from the estate's own lists (subscriptions, VMs, disks, vaults, role assignments,
Recovery Services vaults, protected items, tenants):

- "today": what the current collector (audit/azure/collect.c) requests: per tenant an ARM and a
  Graph token, Backup Management Service in Graph, the subscription list; per subscription the VM
  list, one GET per VM ($expand=instanceView), the disk, key vault and Recovery Services vault
  lists, protected items per Recovery Services vault, role assignments (atScope) per key vault,
  and one GET per custom role definition given to Backup Management Service.
- "lists": the minimum the data needs with list-based collection (issue 5, ARM engine): the same
  per-tenant requests, and per subscription the VM list, the VM list with statusOnly=true
  (instance views), the disk, key vault and Recovery Services vault lists, one role-assignment
  list for the subscription, and the protected items per Recovery Services vault; every list
  counted in pages of --page-size.

floor = requests x latency / concurrency (network wait only: no server or client time).
"""
import argparse
import collections
import json
import math


def sub_of(rid):
    p = (rid or "").split("/")
    return p[2].lower() if len(p) > 2 and p[1].lower() == "subscriptions" else ""


def pages(n, size):
    return max(1, math.ceil(n / size))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("estate")
    ap.add_argument("--page-size", type=int, default=100)
    ap.add_argument("--latency-ms", type=float, default=30)
    ap.add_argument("--concurrency", default="1,4,16")
    a = ap.parse_args()
    e = json.load(open(a.estate))
    P = a.page_size
    subs = [s["subscriptionId"].lower() for s in e.get("subscriptions", [])]
    cnt = {k: collections.Counter(sub_of(x.get("id")) for x in e.get(k, []))
           for k in ("virtualMachines", "disks", "vaults", "recoveryServicesVaults")}
    ra_sub = collections.Counter(sub_of(x.get("properties", {}).get("scope") or x.get("id"))
                                 for x in e.get("roleAssignments", []))
    items = collections.Counter()
    for it in e.get("backupProtectedItems", []):
        items[(it.get("properties", {}).get("vaultId") or "").lower()] += 1
    rsvs = collections.defaultdict(list)
    for r in e.get("recoveryServicesVaults", []):
        rsvs[sub_of(r["id"])].append(r["id"].lower())
    ntenants = len(e.get("tenants", [])) or 1
    subs_per_tenant = collections.Counter(s.get("tenantId", "").lower() for s in e.get("subscriptions", []))
    common = 1 + ntenants * 3 + sum(pages(n, P) for n in subs_per_tenant.values())  # tenants; tokens x2 + BMS; subs
    today = lists = common
    for s in subs:
        v, d, k, r = (cnt["virtualMachines"][s], cnt["disks"][s], cnt["vaults"][s],
                      cnt["recoveryServicesVaults"][s])
        it_pages = sum(pages(items[x], P) for x in rsvs[s])
        base = pages(v, P) + pages(d, P) + pages(k, P) + pages(r, P) + it_pages
        today += base + v + k  # + one GET per VM, one atScope list per vault
        lists += base + pages(v, P) + pages(ra_sub[s], P)  # + statusOnly list, one RA list per subscription
    nvm = sum(cnt["virtualMachines"].values())
    print("estate: %d VMs, %d subscriptions, %d tenants; page size %d, latency %g ms" % (
        nvm, len(subs), ntenants, P, a.latency_ms))
    print("%-8s %9s  %s" % ("model", "requests", "  ".join("floor@c=%s" % c for c in a.concurrency.split(","))))
    for name, n in (("today", today), ("lists", lists)):
        print("%-8s %9d  %s" % (name, n, "  ".join("%9.1f s" % (n * a.latency_ms / 1000.0 / int(c))
                                                     for c in a.concurrency.split(","))))


if __name__ == "__main__":
    main()
