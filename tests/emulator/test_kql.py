#!/usr/bin/env python3
"""
Tests of the emulator's KQL subset (tests/emulator/kql.py) and of its Resource Graph endpoint
(POST /arm/providers/Microsoft.ResourceGraph/resources), over real HTTPS with the emulator
self-test's fixture (test_emulator.py: one emulator on the demo scenario).

    python3 tests/emulator/test_kql.py [unittest args]

Prints "N passed, N failed" last and exits non-zero when any test failed.
"""
import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kql  # noqa: E402
from test_emulator import (S_LOG, S_OLD, S_PROD, S_SHARED, DEMO, call, setUpModule,  # noqa: E402,F401
                           tearDownModule, token)

ARG = "/arm/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01"
ROWS = [
    {"id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/b", "name": "b",
     "type": "microsoft.compute/virtualmachines", "location": "westeurope", "subscriptionId": "s1",
     "properties": {"storageProfile": {"osDisk": {"osType": "Linux"}}, "n": 2}},
    {"id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/a", "name": "a",
     "type": "microsoft.compute/virtualmachines", "location": "northeurope", "subscriptionId": "s1",
     "properties": {"storageProfile": {"osDisk": {"osType": "Windows"}}, "n": 1, "list": [1, 2, 3]}},
    {"id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/a/extensions/ADE",
     "name": "ADE", "type": "microsoft.compute/virtualmachines/extensions", "location": "northeurope",
     "subscriptionId": "s1",
     "properties": {"publisher": "Microsoft.Azure.Security", "type": "AzureDiskEncryption", "settings": {}}},
    {"id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/disks/d", "name": "d",
     "type": "microsoft.compute/disks", "location": "westeurope", "subscriptionId": "s1",
     "properties": {"encryptionSettingsCollection": {"enabled": True}}},
    {"id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/disks/e", "name": "e",
     "type": "microsoft.compute/disks", "location": "westeurope", "subscriptionId": "s1", "properties": {}},
]


def q(text, rows=ROWS, list_max=kql.MAKE_LIST_MAX):
    return kql.run(kql.parse(text), rows, list_max)


def kvaudit_queries():
    """The queries kvaudit sends (audit/azure/collect_graph.c's QUERIES), by their Q_ name."""
    src = open(os.path.join(os.path.dirname(__file__), "..", "..", "audit", "azure", "collect_graph.c")).read()
    start = src.index("static const struct graph_query QUERIES")
    body = src[start:src.index("};", start)]
    queries, cur = {}, None
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("[Q_"):
            cur = line[1:line.index("]")]
            queries[cur] = ""
            line = line.split(",", 1)[1].strip()
        if cur is not None:
            queries[cur] += "".join(json.loads('"%s"' % p) for p in re.findall(r'"((?:[^"\\]|\\.)*)"', line))
    return queries


# The per-resource queries kvaudit sent before it summarized ADE extensions and disks by VM.
PER_RESOURCE = {
    "extensions": "Resources | where type =~ 'microsoft.compute/virtualmachines/extensions'"
                  " | where tostring(properties.publisher) =~ 'Microsoft.Azure.Security'"
                  " and tostring(properties.type) in~ ('AzureDiskEncryption', 'AzureDiskEncryptionForLinux')"
                  " | project id, name, type, location, subscriptionId, resourceGroup, tags, properties"
                  " | order by id asc",
    # a disk keeps only what kvaudit reads of it (collect_graph.c's comment on QUERIES)
    "disks": "Resources | where type =~ 'microsoft.compute/disks'"
             " | where isnotnull(properties.encryptionSettingsCollection)"
             " | project id, name, type, location, managedBy,"
             " properties = bag_pack('encryptionSettingsCollection', properties.encryptionSettingsCollection)"
             " | order by id asc",
}


def unpack(rows):
    """What collect_graph.c's unpack_ade makes of the summarized rows: each list, ordered by id."""
    out = {"extensions": [], "disks": []}
    for r in rows:
        assert len(r["extensions"]) + len(r["disks"]) == r["n"], r
        for k in out:
            out[k] += r[k]
    return {k: sorted(v, key=lambda x: x["id"]) for k, v in out.items()}


class Parser(unittest.TestCase):
    """The subset: where (=~ == != in~ in has contains, and/or, functions), project, extend, mv-expand,
    order by; anything else is a KqlError with the position of what was not understood."""

    def test_where_case_insensitive_equality_and_type(self):
        r = q("Resources | where type =~ 'Microsoft.Compute/virtualMachines' | project name")
        self.assertEqual(sorted(x["name"] for x in r), ["a", "b"])
        self.assertEqual(q("Resources | where type == 'Microsoft.Compute/virtualMachines'"), [])

    def test_in_tilde_on_tostring_and_and(self):
        r = q("Resources | where type =~ 'microsoft.compute/virtualmachines/extensions'"
              " | where tostring(properties.publisher) =~ 'microsoft.azure.security'"
              " and tostring(properties.type) in~ ('azurediskencryption', 'AzureDiskEncryptionForLinux')")
        self.assertEqual([x["name"] for x in r], ["ADE"])

    def test_isnotnull_isempty_or_not(self):
        r = q("Resources | where isnotnull(properties.encryptionSettingsCollection) | project name")
        self.assertEqual([x["name"] for x in r], ["d"])
        r = q("Resources | where type =~ 'microsoft.compute/disks' and not(isnotnull(properties.encryptionSettingsCollection))")
        self.assertEqual([x["name"] for x in r], ["e"])
        r = q("Resources | where name == 'a' or name == 'e' | project name")
        self.assertEqual(sorted(x["name"] for x in r), ["a", "e"])
        self.assertEqual(len(q("Resources | where isempty(tostring(properties.nothing))")), 5)

    def test_project_extend_order(self):
        r = q("Resources | where type =~ 'microsoft.compute/virtualmachines' | extend os = tostring("
              "properties.storageProfile.osDisk.osType) | project id, os, loc = location | order by id asc")
        self.assertEqual([x["os"] for x in r], ["Windows", "Linux"])
        self.assertEqual(set(r[0]), {"id", "os", "loc"})
        r = q("Resources | where type =~ 'microsoft.compute/virtualmachines' | order by name")
        self.assertEqual([x["name"] for x in r], ["b", "a"])   # Kusto's default: descending

    def test_mv_expand(self):
        r = q("Resources | where name == 'a' and type =~ 'microsoft.compute/virtualmachines'"
              " | mv-expand x = properties.list | project x")
        self.assertEqual([x["x"] for x in r], [1, 2, 3])

    def test_has_and_contains(self):
        self.assertEqual(len(q("Resources | where id has 'disks'")), 2)
        self.assertEqual(len(q("Resources | where name contains 'A'")), 2)   # a and ADE

    def test_kvaudit_queries_parse(self):
        """Every query kvaudit sends (audit/azure/collect_graph.c) is in the subset."""
        queries = kvaudit_queries()
        self.assertEqual(sorted(queries), ["Q_ADE", "Q_RSVS", "Q_VAULTS", "Q_VMS"])
        for text in queries.values():
            kql.parse(text)
        for text in PER_RESOURCE.values():
            kql.parse(text)

    def test_summarize_count_countif_make_list(self):
        r = q("Resources | summarize n = count(), vms = countif(type =~ 'microsoft.compute/virtualmachines'),"
              " names = make_list(name), disks = make_list_if(name, type =~ 'microsoft.compute/disks') by subscriptionId")
        self.assertEqual(r, [{"subscriptionId": "s1", "n": 5, "vms": 2, "names": ["b", "a", "ADE", "d", "e"],
                              "disks": ["d", "e"]}])
        r = q("Resources | summarize n = count() by t = tolower(type) | order by t asc")
        self.assertEqual([(x["t"], x["n"]) for x in r], [("microsoft.compute/disks", 2),
                                                         ("microsoft.compute/virtualmachines", 2),
                                                         ("microsoft.compute/virtualmachines/extensions", 1)])
        self.assertEqual(q("Resources | summarize n = count()"), [{"n": 5}])

    def test_make_list_keeps_at_most_max_size(self):
        self.assertEqual(q("Resources | summarize l = make_list(name, 2)")[0]["l"], ["b", "a"])
        self.assertEqual(q("Resources | summarize l = make_list_if(name, true, 1)")[0]["l"], ["b"])
        # the scenario's cap (graphMakeListMax), below Kusto's default, cuts lists as maxSize does
        r = q("Resources | summarize n = count(), l = make_list(name)", list_max=3)
        self.assertEqual((r[0]["n"], r[0]["l"]), (5, ["b", "a", "ADE"]))

    def test_iff_split_bag_pack_and_index(self):
        r = q("Resources | extend vm = tolower(iff(type =~ 'microsoft.compute/disks', id,"
              " tostring(split(id, '/extensions/')[0]))) | where name == 'ADE' | project vm,"
              " b = bag_pack('n', name, 'p', properties.publisher, 'none', properties.nothing)")
        self.assertEqual(r, [{"vm": "/subscriptions/s1/resourcegroups/rg/providers/microsoft.compute/"
                                    "virtualmachines/a",
                              "b": {"n": "ADE", "p": "Microsoft.Azure.Security", "none": None}}])
        self.assertEqual(q("Resources | where name == 'd' | project x = split(id, '/')[8]")[0]["x"], "d")

    def test_the_summarized_query_rebuilds_the_per_resource_rows(self):
        rows = ROWS + [
            {"id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/disks/a-os", "name": "a-os",
             "type": "microsoft.compute/disks", "location": "northeurope", "subscriptionId": "s1",
             "managedBy": "/subscriptions/s1/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/A",
             "sku": {"name": "Premium_LRS"}, "zones": ["1"],
             "properties": {"encryptionSettingsCollection": {"enabled": True}}}]
        for r in rows:
            r.setdefault("managedBy", "")
            r.setdefault("resourceGroup", "rg")
        got = q(kvaudit_queries()["Q_ADE"], rows)
        # VM a: its extension and its OS disk (managedBy in another case) in one row; unattached disk d alone
        self.assertEqual([(x["n"], len(x["extensions"]), len(x["disks"])) for x in got], [(1, 0, 1), (2, 1, 1)])
        self.assertEqual(unpack(got), {k: q(text, rows) for k, text in PER_RESOURCE.items()})

    def test_outside_the_subset_is_an_error(self):
        for text in ("Resources | summarize count() by type",            # the emulator needs a name
                     "Resources | summarize c = dcount(type) by type",
                     "Resources | where make_list(name) == 'a'",          # an aggregation outside summarize
                     "Resources | extend x = iff(name == 'a', name, properties)",   # branches of two types
                     "Resources | extend x = iff(name, 'a', 'b')",
                     "Resources | extend x = split(properties, '/')",     # dynamic: Kusto wants tostring()
                     "Resources | extend x = bag_pack('a')",
                     "Resources | extend x = name[0]",
                     "Resources | summarize l = make_list(name, size) by type",
                     "Resources | summarize n = countif(name) by type",
                     "Resources | take 5",
                     "ResourceContainers | project id",
                     "Resources | where properties.publisher =~ 'x'",     # dynamic: Kusto wants tostring()
                     "Resources | where strlen(name) > 3",
                     "Resources | where name =~ ",
                     "Resources | project",
                     "Resources | where name == 'a' | join (Resources) on id"):
            with self.assertRaises(kql.KqlError, msg=text):
                kql.parse(text)

    def test_error_body_is_resource_graphs(self):
        try:
            kql.parse("Resources | take 5")
        except kql.KqlError as e:
            body = kql.error_body(e, "cid", "2026-11-28T12:00:00Z")
        self.assertEqual(body["error"]["code"], "BadRequest")
        self.assertEqual(body["error"]["details"][0]["code"], "InvalidQuery")
        self.assertEqual(body["error"]["details"][1]["token"], "take")


class Endpoint(unittest.TestCase):
    """POST /providers/Microsoft.ResourceGraph/resources on the emulator."""

    def post(self, body, tok=None, version="2024-04-01"):
        url = ARG.replace("2024-04-01", version)
        return call("POST", url, token=tok or token(), body=body)

    def test_vms_of_the_demo_across_subscriptions(self):
        r = self.post({"subscriptions": [S_PROD, S_SHARED],
                       "query": "Resources | where type =~ 'microsoft.compute/virtualmachines' | project id, name"})
        self.assertEqual(r.status, 200, r.body)
        d = r.json()
        self.assertEqual(d["resultTruncated"], "false")            # a string, as the service sends it
        want = {v["id"].lower() for v in DEMO["virtualMachines"] if S_PROD in v["id"]}
        self.assertEqual({x["id"].lower() for x in d["data"]}, want)
        self.assertEqual(d["count"], len(want))
        self.assertNotIn("$skipToken", d)
        self.assertIsNotNone(r.header("x-ms-user-quota-remaining"))
        self.assertRegex(r.header("x-ms-user-quota-resets-after"), r"^\d\d:\d\d:\d\d$")

    def test_no_instance_view_but_the_power_state(self):
        r = self.post({"subscriptions": [S_PROD], "query": "Resources | where type =~ "
                       "'microsoft.compute/virtualmachines' | project id, properties"})
        for row in r.json()["data"]:
            self.assertNotIn("instanceView", row["properties"])
        self.assertTrue(any("extended" in row["properties"] for row in r.json()["data"]))

    def test_skiptoken_paging(self):
        body = {"subscriptions": [S_PROD, S_LOG, S_OLD], "options": {"$top": 3},
                "query": "Resources | project id | order by id asc"}
        seen, pages = [], 0
        while True:
            r = self.post(body)
            self.assertEqual(r.status, 200, r.body)
            d = r.json()
            pages += 1
            self.assertLessEqual(d["count"], 3)
            seen += [x["id"] for x in d["data"]]
            if "$skipToken" not in d:
                break
            body["options"] = {"$skipToken": d["$skipToken"], "$top": 3}
        self.assertEqual(len(seen), d["totalRecords"])
        self.assertEqual(len(seen), len(set(seen)))
        self.assertEqual(seen, sorted(seen))
        self.assertGreater(pages, 3)

    def pages(self, body):
        """Every row of the query, page after page ($skipToken), and the number of pages."""
        rows, n = [], 0
        while True:
            r = self.post(body)
            self.assertEqual(r.status, 200, r.body)
            d = r.json()
            rows += d["data"]
            n += 1
            if "$skipToken" not in d:
                return rows, n
            body = dict(body, options=dict(body.get("options") or {}, **{"$skipToken": d["$skipToken"]}))

    def test_the_summarized_query_gives_the_per_resource_rows_of_the_demo(self):
        subs = sorted({s["subscriptionId"] for s in DEMO["subscriptions"]})
        got, n = self.pages({"subscriptions": subs, "query": kvaudit_queries()["Q_ADE"], "options": {"$top": 2}})
        self.assertGreater(n, 2)
        self.assertEqual(len({x["vm"] for x in got}), len(got))   # one row per VM, none twice across pages
        want = {k: self.pages({"subscriptions": subs, "query": text})[0] for k, text in PER_RESOURCE.items()}
        self.assertTrue(want["disks"] and want["extensions"])
        self.assertEqual(unpack(got), want)

    def test_a_query_outside_the_subset_fails_loudly(self):
        r = self.post({"subscriptions": [S_PROD], "query": "Resources | summarize c = dcount(type) by type"})
        self.assertEqual(r.status, 400)
        err = r.json()["error"]
        self.assertEqual(err["code"], "BadRequest")
        self.assertEqual([d["code"] for d in err["details"]], ["InvalidQuery", "ParserFailure"])

    def test_bad_requests(self):
        self.assertEqual(self.post({"subscriptions": [S_PROD], "query": "Resources"}, version="2019-01-01").status,
                         400)
        self.assertEqual(self.post({"subscriptions": [S_PROD], "query": "Resources",
                                    "options": {"$top": 5000}}).status, 400)
        self.assertEqual(self.post({"subscriptions": ["%08d-0000-0000-0000-000000000000" % i for i in range(1001)],
                                    "query": "Resources"}).status, 400)
        r = self.post({"subscriptions": ["00000000-0000-0000-0000-000000000000"], "query": "Resources"})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["error"]["details"][0]["code"], "NoValidSubscriptionsInQueryRequest")
        r = call("GET", ARG, token=token())
        self.assertEqual(r.status, 405)


def main():
    runner = unittest.TextTestRunner(verbosity=2)
    prog = unittest.main(module=__name__, testRunner=runner, exit=False, argv=sys.argv)
    res = prog.result
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    print("%d passed, %d failed" % (res.testsRun - failed - len(res.skipped), failed))
    return 1 if failed or res.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
