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
- "arm-ids": what the ARM engine (audit/azure/collect_arm.c) requests when the VM list gives
  extensions as bare IDs (docs/azure-api.md, "ARM engine"): "lists", plus per VM with extensions
  one GET per ADE extension its instance view names, or one extension list when the instance
  view does not name them all.  With whole extensions in the VM list the engine makes "lists".
- "graph": what the Resource Graph engine (audit/azure/collect_graph.c) requests: the same
  per-tenant requests; per tenant its four queries in pages of 1000 rows: VMs, ADE extensions and
  encrypted disks (one row per VM that has either, and one per unattached encrypted disk), key
  vaults, Recovery Services vaults; per subscription with VMs the statusOnly VM list,
  per subscription with key vaults one role-assignment list, per Recovery Services vault its
  protected items.
Every model adds Azure Backup's evidence (audit/azure/collect_backup.c): per Recovery Services
vault that protects a VM its jobs and policies, per resource group of such vaults the Activity Log
(the snapshot keeps only the protection writes, so this is a minimum), and one Graph read per
person in the snapshot's principals.

floor = requests x latency / concurrency (network wait only: no server or client time).  Resource
Graph's user quota (--quota Q/S, default 15/5; per user, and a tenant has its own user) adds its own
floor for the graph model: a tenant's N pages cannot finish before S x floor((N - 1) / Q) seconds.
  --emit MODEL prints only that model's request count (for bench/run.sh and graph.sh);
  --emit graph-pages the number of Resource Graph pages (every tenant's);
  --emit graph-quota-floor that quota floor in seconds (the tenant with the most pages).

"""
import argparse
import collections
import json
import math


def sub_of(rid):
    p = (rid or "").split("/")
    return p[2].lower() if len(p) > 2 and p[1].lower() == "subscriptions" else ""


def rsv_prefix(rid):
    """The Recovery Services vault an ID is below, lower case ("" if none)."""
    p = (rid or "").lower().split("/")
    return "/".join(p[:9]) if len(p) >= 9 and p[7] == "vaults" and p[6] == "microsoft.recoveryservices" else ""


def rg_of(rid):
    p = (rid or "").lower().split("/")
    return "/".join(p[:5]) if len(p) >= 5 and p[3] == "resourcegroups" else ""


def pages(n, size):
    return max(1, math.ceil(n / size))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("estate")
    ap.add_argument("--page-size", type=int, default=100)
    ap.add_argument("--latency-ms", type=float, default=30)
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--quota", default="15/5", help="Resource Graph's user quota, queries/seconds")
    ap.add_argument("--emit", choices=("today", "lists", "arm-ids", "graph", "graph-pages", "graph-quota-floor"))
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
    ext_reads = 0
    ext_of = collections.defaultdict(list)
    for x in e.get("vmExtensions", []):
        ext_of[x.get("id", "").lower().split("/extensions/")[0]].append(x)
    ade = ("microsoft.azure.security.azurediskencryption", "microsoft.azure.security.azurediskencryptionforlinux")
    for vm in e.get("virtualMachines", []):
        exts = list(vm.get("resources") or []) + ext_of.get(vm.get("id", "").lower(), [])
        if not exts:
            continue
        iv = (vm.get("properties") or {}).get("instanceView") or {}
        named = {(x.get("name") or "").lower(): x for x in iv.get("extensions") or []}
        names = [x.get("id", "").rsplit("/", 1)[-1].lower() for x in exts]
        if "extensions" not in iv or any(n not in named for n in names):
            ext_reads += 1
        else:
            ext_reads += sum(1 for n in names if (named[n].get("type") or "").lower() in ade)
    arm_ids = lists + ext_reads
    # Azure Backup's evidence, in every model.
    jobs = collections.Counter(rsv_prefix(j.get("id")) for j in e.get("backupJobs", []))
    pols = collections.Counter(rsv_prefix(j.get("id")) for j in e.get("backupPolicies", []))
    events = collections.Counter(rg_of(x.get("resourceId")) for x in e.get("activityLog", []))
    protecting = sorted({x for x in items if x})
    evidence = sum(pages(jobs[x], P) + pages(pols[x], P) for x in protecting)
    evidence += sum(pages(events[g], P) for g in sorted({rg_of(x) for x in protecting}))
    evidence += len(e.get("principals", []))
    today, lists, arm_ids = today + evidence, lists + evidence, arm_ids + evidence
    # The Resource Graph engine.
    ade = ("azurediskencryption", "azurediskencryptionforlinux")
    tenant_of = {s["subscriptionId"].lower(): s.get("tenantId", "").lower() for s in e.get("subscriptions", [])}
    rows = collections.defaultdict(collections.Counter)   # tenant -> query -> rows
    ade_rows = collections.defaultdict(set)               # tenant -> the ADE query's rows (VM or disk IDs)

    def count(q, rid):
        rows[tenant_of.get(sub_of(rid), "")][q] += 1
    for vm in e.get("virtualMachines", []):
        count("vms", vm.get("id"))
    for x in [r for vm in e.get("virtualMachines", []) for r in vm.get("resources") or []] + e.get("vmExtensions", []):
        p = x.get("properties") or {}
        if (p.get("publisher") or "").lower() == "microsoft.azure.security" and (p.get("type") or "").lower() in ade:
            rid = x.get("id") or ""
            ade_rows[tenant_of.get(sub_of(rid), "")].add(rid.split("/extensions/")[0].lower())
    for d in e.get("disks", []):
        if (d.get("properties") or {}).get("encryptionSettingsCollection") is not None:
            ade_rows[tenant_of.get(sub_of(d.get("id")), "")].add((d.get("managedBy") or d.get("id") or "").lower())
    for t, vms in ade_rows.items():
        rows[t]["ade"] = len(vms)
    for k in ("vaults", "recoveryServicesVaults"):
        for x in e.get(k, []):
            count(k, x.get("id"))
    graph_pages = sum(pages(rows[t][q], 1000) for t in set(tenant_of.values())
                      for q in ("vms", "ade", "vaults", "recoveryServicesVaults"))
    graph = common + graph_pages + evidence
    for s in subs:
        graph += (pages(cnt["virtualMachines"][s], P) if cnt["virtualMachines"][s] else 0) + \
            (pages(ra_sub[s], P) if cnt["vaults"][s] else 0) + sum(pages(items[x], P) for x in rsvs[s])
    qn, qs = (float(x) for x in a.quota.split("/"))
    most = max((sum(pages(rows[t][q], 1000) for q in ("vms", "ade", "vaults", "recoveryServicesVaults"))
                for t in set(tenant_of.values())), default=0)
    quota_floor = qs * math.floor((most - 1) / qn) if most else 0
    if a.emit:
        print({"today": today, "lists": lists, "arm-ids": arm_ids, "graph": graph,
               "graph-pages": graph_pages, "graph-quota-floor": quota_floor}[a.emit])
        return
    nvm = sum(cnt["virtualMachines"].values())
    print("estate: %d VMs, %d subscriptions, %d tenants; page size %d, latency %g ms" % (
        nvm, len(subs), ntenants, P, a.latency_ms))
    print("%-8s %9s  %s" % ("model", "requests", "  ".join("floor@c=%s" % c for c in a.concurrency.split(","))))
    for name, n in (("today", today), ("lists", lists), ("arm-ids", arm_ids), ("graph", graph)):
        print("%-8s %9d  %s" % (name, n, "  ".join("%9.1f s" % (n * a.latency_ms / 1000.0 / int(c))
                                                     for c in a.concurrency.split(","))))
    print("of which Azure Backup evidence: %d requests; Resource Graph: %d pages (at most %d a tenant), "
          "quota %s floor %.0f s" % (evidence, graph_pages, most, a.quota, quota_floor))


if __name__ == "__main__":
    main()
