#!/usr/bin/env python3
"""Generates a synthetic partner feed for the dev stack's demo and end-to-end tests.

    deploy/dev/gen-feed.py --out-dir DIR [--directory FILE] [--days D] [--now ISO]
                           [--seed S] [--scale X]

Reads the location directory (deploy/dev/data/directory.csv by default) and writes
into DIR:

  nhse.jsonl, ccg.jsonl, ofsted.jsonl
      one raw partner message a line, in publication order:
        {"key": <Kafka key>, "value": <the event, as the partner schema of docs/contract/formats.md
         defines it>, "publish_at_ms": <when the partner would have published it>}
      Keys are the partner's choice: the location id (NHSE, CCG: so one location's
      events keep their order within a topic) and the local authority code (Ofsted).
  malformed.jsonl
      messages the normaliser must dead-letter, one of every kind (docs/contract/reason-codes.md):
        {"topic": "nhse"|"ccg"|"ofsted-send", "key": ..., "value_text": <raw text to
         publish as-is> | "value_hex": <raw bytes, for the Avro cases>,
         "expect": <reason code>, "field": <expected cs.error.field>,
         "publish_at_ms": ..., "note": ...}
  manifest.json
      the arguments and --now used, counts per file, and the scenario of every
      interesting subject (with its score under docs/contract/risk-model.md's default rules, in time
      order).

Shape of the feed (docs/contract/risk-model.md has the risk model): most locations are quiet
(complaints, no-harm or low-harm incidents, positive feedback; an event that would lift
a quiet location's score to 35 is demoted to no harm / positive feedback); scripted
locations (tables SCRIPTS, SEND_OUTCOMES below) escalate to WATCH or INSPECT, trigger
the immediate rule, or escalate early and clear after 60+ quiet days; a few events are
reported late (out of time order) and a few are resent unchanged (partner duplicates).
Scripted subjects get no background events, so their outcome is exactly the script's.
Scripts that need more history than --days are left out.

Every event time is before --now (default: now, rounded down to the minute). Free text
(description, narrative) and whistleblower_name, which caresignal must drop, always
contain the marker SYNTHETIC. --scale multiplies the background volume (and with it
the duplicates and malformed lines); scripted subjects are a fixed share of the
directory. Deterministic: the same arguments give byte-identical files. Standard
library only.
"""
import argparse
import calendar
import csv
import datetime
import hashlib
import json
import math
import os
import random
import re
import sys

MIN = 60 * 1000
HOUR = 60 * MIN
DAY = 24 * HOUR

# ---------------------------------------------------------------------------- schemas

NHSE_CATEGORIES = ["SERIOUS_INCIDENT", "NEVER_EVENT", "OUTBREAK", "VACCINATION_INCIDENT",
                   "WORKFORCE_SHORTFALL", "DNACPR_CONCERN", "IPC_CONCERN"]
HARMS = ["NO_HARM", "LOW", "MODERATE", "SEVERE", "DEATH"]
CONCERN_TYPES = ["COMPLAINT", "SAFEGUARDING_REFERRAL", "WHISTLEBLOWING", "QUALITY_CONCERN",
                 "CONTRACT_BREACH", "POSITIVE_FEEDBACK"]
RAGS = ["GREEN", "AMBER", "RED"]
OUTCOMES = ["POSITIVE", "INCONSISTENT", "SYSTEMIC_FAILINGS", "WRITTEN_STATEMENT_OF_ACTION"]

# docs/contract/canonical-event.md mapping and docs/contract/risk-model.md weights (the default rules), to keep quiet locations quiet
# and to report each scripted subject's score in the manifest.
SIGNAL = {"SAFEGUARDING_REFERRAL": "SAFEGUARDING"}  # others keep their name
SEVERITY = {"NO_HARM": "INFO", "LOW": "LOW", "MODERATE": "MEDIUM", "SEVERE": "HIGH",
            "DEATH": "CRITICAL", "GREEN": "LOW", "AMBER": "MEDIUM", "RED": "HIGH",
            "POSITIVE": "INFO", "INCONSISTENT": "MEDIUM", "SYSTEMIC_FAILINGS": "HIGH",
            "WRITTEN_STATEMENT_OF_ACTION": "HIGH"}
BASE = {"NEVER_EVENT": 40, "WHISTLEBLOWING": 30, "SEND_OUTCOME": 30, "SAFEGUARDING": 25,
        "DNACPR_CONCERN": 25, "SERIOUS_INCIDENT": 20, "OUTBREAK": 15,
        "VACCINATION_INCIDENT": 10, "IPC_CONCERN": 10, "QUALITY_CONCERN": 10,
        "WORKFORCE_SHORTFALL": 8, "CONTRACT_BREACH": 8, "COMPLAINT": 5,
        "POSITIVE_FEEDBACK": 0}
MULT = {"INFO": 0, "LOW": 0.5, "MEDIUM": 1, "HIGH": 2, "CRITICAL": 4}
HALF_LIFE = 30 * DAY
QUIET_CAP = 35  # a quiet location's score stays below this (WATCH is 40)

# ---------------------------------------------------------------------------- places

CARE = ["Care home", "Care home with nursing", "Domiciliary care", "Supported living"]
RESIDENTIAL = ["Care home", "Care home with nursing", "Hospice"]
HOSPITAL = ["Acute hospital", "Community hospital", "Mental health hospital",
            "Independent hospital"]
SURGICAL = ["Acute hospital", "Independent hospital", "Dental practice"]
VACCINATING = ["GP practice", "Care home", "Care home with nursing", "Acute hospital",
               "Community hospital"]
INPATIENT = RESIDENTIAL + HOSPITAL

# Background events per location over 90 days (× --scale × D/90), by service type.
RATE = {"Acute hospital": 9, "Community hospital": 4, "Mental health hospital": 5,
        "Independent hospital": 2.5, "Care home": 2.5, "Care home with nursing": 3,
        "Domiciliary care": 2, "Supported living": 1.5, "GP practice": 2,
        "Dental practice": 1.2, "Community mental health": 2, "Hospice": 1.5}
RATE_OTHER = 2

# incident_id prefixes of NHSE's own references (serious incidents use SI/<year>/<n>).
REF_PREFIX = {"OUTBREAK": "OB", "VACCINATION_INCIDENT": "VAC", "WORKFORCE_SHORTFALL": "WF",
              "DNACPR_CONCERN": "DNACPR", "IPC_CONCERN": "IPC"}
# NHS England regional teams (reporting_org_ods of incidents at non-trust locations).
NHSE_REGION_ODS = {"North East": "Y63", "Yorkshire and The Humber": "Y63",
                   "North West": "Y62", "East Midlands": "Y60", "West Midlands": "Y60",
                   "East of England": "Y61", "London": "Y56", "South East": "Y59",
                   "South West": "Y58"}
# Integrated Care Boards by region; an area's concerns come from one ICB (70%) or its
# legacy CCG code (30%, e.g. "00L", "15E").
ICBS = {"North East": ["QHM"], "North West": ["QE1", "QOP", "QYG"],
        "Yorkshire and The Humber": ["QOQ", "QF7", "QWO"],
        "East Midlands": ["QJ2", "QK1", "QJM", "QT1", "QPM"],
        "West Midlands": ["QHL", "QWU", "QNC", "QUA", "QGH", "QOC"],
        "East of England": ["QUE", "QHG", "QM7", "QH8", "QMM", "QJG"],
        "London": ["QMJ", "QRV", "QMF", "QKK", "QWE"],
        "South East": ["QKS", "QNX", "QRL", "QU9", "QXU", "QNQ"],
        "South West": ["QOX", "QUY", "QT6", "QJK", "QVV", "QR1", "QSL"]}
ICBS_OTHER = ["QZZ"]

# ---------------------------------------------------------------------------- scenarios

# Background events: (source, kind, grade, relative frequency, where: service types or
# None for anywhere). Source N = NHSE incident (kind = category, grade = harm);
# C = CCG concern (kind = concern_type, grade = rag).
QUIET = [
    ("C", "COMPLAINT", "GREEN", 30, None),
    ("C", "COMPLAINT", "AMBER", 6, None),
    ("C", "POSITIVE_FEEDBACK", "GREEN", 16, None),
    ("C", "QUALITY_CONCERN", "GREEN", 5, None),
    ("C", "CONTRACT_BREACH", "GREEN", 2, CARE),
    ("N", "SERIOUS_INCIDENT", "NO_HARM", 10, None),
    ("N", "SERIOUS_INCIDENT", "LOW", 4, None),
    ("N", "IPC_CONCERN", "NO_HARM", 7, None),
    ("N", "IPC_CONCERN", "LOW", 4, None),
    ("N", "WORKFORCE_SHORTFALL", "LOW", 4, None),
    ("N", "VACCINATION_INCIDENT", "NO_HARM", 3, VACCINATING),
    ("N", "OUTBREAK", "NO_HARM", 2, INPATIENT),
    ("N", "DNACPR_CONCERN", "NO_HARM", 1, INPATIENT),
]
QUIET_LATE = 0.01  # share of background incidents reported 5-20 days late

# Scripted locations. share: of the directory's locations (at least one each);
# where: service types to pick from (None: any); expect: the alerts the location
# produces under the default rules, in order ("<kind> <level>[ <reason>]");
# steps: (days before --now, source, kind, grade[, days late]), where "days late"
# delays the partner's report so that the event arrives after newer ones.
# Clearing scripts use one source only, so that publishing the files one after the
# other keeps their order.
SCRIPTS = [
    {"name": "escalating_safeguarding", "share": 0.02, "where": CARE,
     "expect": ["RAISED WATCH"],
     "about": "complaints turning into safeguarding referrals over six weeks",
     "steps": [(45, "C", "COMPLAINT", "AMBER"),
               (31, "C", "QUALITY_CONCERN", "AMBER"),
               (19, "C", "SAFEGUARDING_REFERRAL", "AMBER"),
               (10, "C", "COMPLAINT", "AMBER"),
               (4, "C", "SAFEGUARDING_REFERRAL", "AMBER"),
               (2, "N", "IPC_CONCERN", "LOW")]},
    {"name": "escalating_staffing", "share": 0.0125, "where": INPATIENT,
     "expect": ["RAISED WATCH"],
     "about": "staff shortages followed by moderate-harm incidents (one reported late)",
     "steps": [(50, "N", "WORKFORCE_SHORTFALL", "LOW"),
               (36, "N", "WORKFORCE_SHORTFALL", "MODERATE"),
               (22, "N", "SERIOUS_INCIDENT", "MODERATE", 9),
               (15, "C", "QUALITY_CONCERN", "AMBER"),
               (7, "N", "SERIOUS_INCIDENT", "MODERATE"),
               (3, "C", "COMPLAINT", "RED")]},
    {"name": "escalating_whistleblowing", "share": 0.01, "where": CARE + HOSPITAL,
     "expect": ["RAISED WATCH", "RAISED INSPECT"],
     "about": "whistleblowing and safeguarding referrals growing over six weeks",
     "steps": [(42, "C", "COMPLAINT", "AMBER"),
               (30, "C", "WHISTLEBLOWING", "AMBER"),
               (21, "C", "SAFEGUARDING_REFERRAL", "AMBER"),
               (13, "N", "SERIOUS_INCIDENT", "MODERATE"),
               (7, "C", "WHISTLEBLOWING", "RED"),
               (3, "C", "SAFEGUARDING_REFERRAL", "RED")]},
    {"name": "escalating_harm", "share": 0.0075, "where": INPATIENT,
     "expect": ["RAISED WATCH", "RAISED INSPECT"],
     "about": "infection control, an outbreak and severe-harm incidents over a month",
     "steps": [(32, "N", "IPC_CONCERN", "MODERATE"),
               (24, "N", "OUTBREAK", "MODERATE"),
               (16, "N", "SERIOUS_INCIDENT", "SEVERE"),
               (10, "N", "DNACPR_CONCERN", "MODERATE", 6),
               (5, "N", "SERIOUS_INCIDENT", "SEVERE"),
               (2, "C", "SAFEGUARDING_REFERRAL", "AMBER")]},
    {"name": "critical_never_event", "share": 0.0015, "where": SURGICAL,
     "expect": ["RAISED INSPECT IMMEDIATE"],
     "about": "a never event (wrong site surgery, retained swab, wrong tooth)",
     "steps": [(30, "C", "COMPLAINT", "GREEN"),
               (9, "N", "NEVER_EVENT", "MODERATE")]},
    {"name": "critical_death", "share": 0.0015, "where": INPATIENT + CARE,
     "expect": ["RAISED INSPECT IMMEDIATE"],
     "about": "a safeguarding referral, then an incident graded DEATH",
     "steps": [(25, "C", "QUALITY_CONCERN", "AMBER"),
               (14, "C", "SAFEGUARDING_REFERRAL", "AMBER"),
               (6, "N", "SERIOUS_INCIDENT", "DEATH")]},
    {"name": "critical_dnacpr_death", "share": 0.001, "where": INPATIENT,
     "expect": ["RAISED INSPECT IMMEDIATE"],
     "about": "a DNACPR concern graded DEATH, out of the blue",
     "steps": [(4, "N", "DNACPR_CONCERN", "DEATH")]},
    {"name": "critical_never_event_no_harm", "share": 0.001, "where": SURGICAL,
     "expect": ["RAISED INSPECT IMMEDIATE"],
     "about": "a never event graded NO_HARM: weight 0, still immediate",
     "steps": [(12, "N", "NEVER_EVENT", "NO_HARM")]},
    {"name": "late_death_report", "share": 0.0007, "where": INPATIENT,
     "expect": ["RAISED WATCH THRESHOLD"],
     "about": "a DEATH incident reported 43 days late: >= 28 days behind as_of, so it "
              "raises nothing by itself, but its decayed weight crosses WATCH",
     "steps": [(14, "N", "IPC_CONCERN", "LOW"),
               (5, "N", "SERIOUS_INCIDENT", "MODERATE"),
               (45, "N", "SERIOUS_INCIDENT", "DEATH", 43)]},
    {"name": "cleared_after_watch", "share": 0.004, "where": CARE,
     "expect": ["RAISED WATCH", "CLEARED NONE"],
     "about": "concerns 80+ days ago, then 73 quiet days; a positive feedback clears it",
     "steps": [(88, "C", "SAFEGUARDING_REFERRAL", "AMBER"),
               (85, "C", "WHISTLEBLOWING", "AMBER"),
               (81, "C", "QUALITY_CONCERN", "RED"),
               (8, "C", "POSITIVE_FEEDBACK", "GREEN")]},
    {"name": "cleared_after_inspect", "share": 0.004, "where": INPATIENT,
     "expect": ["RAISED WATCH", "RAISED INSPECT", "CLEARED NONE"],
     "about": "severe incidents 80+ days ago, then 74 quiet days; a no-harm report "
              "clears it (INSPECT to NONE at once)",
     "steps": [(88, "N", "SERIOUS_INCIDENT", "SEVERE"),
               (86, "N", "SERIOUS_INCIDENT", "SEVERE"),
               (84, "N", "DNACPR_CONCERN", "SEVERE"),
               (82, "N", "OUTBREAK", "MODERATE"),
               (8, "N", "IPC_CONCERN", "NO_HARM")]},
    {"name": "cleared_after_never_event", "share": 0.002, "where": SURGICAL,
     "expect": ["RAISED INSPECT IMMEDIATE", "CLEARED NONE"],
     "about": "a never event 86 days ago; the 28-day hold is long over when the next "
              "(no-harm) report arrives",
     "steps": [(86, "N", "NEVER_EVENT", "LOW"),
               (84, "N", "SERIOUS_INCIDENT", "MODERATE"),
               (6, "N", "SERIOUS_INCIDENT", "NO_HARM")]},
]

# Ofsted SEND area outcomes: (days before --now, outcome, named locations, area):
# area "any" is a local area with locations, "empty" one without (region UNKNOWN),
# "revisit" the same area for every row so marked. repeat: a named location listed twice.
SEND_OUTCOMES = [
    # days, outcome,                       named, area,     repeat
    (80, "POSITIVE", 0, "any", False),
    (75, "SYSTEMIC_FAILINGS", 2, "revisit", False),
    (66, "INCONSISTENT", 2, "any", False),
    (52, "SYSTEMIC_FAILINGS", 3, "any", False),
    (45, "POSITIVE", 1, "any", False),
    (38, "WRITTEN_STATEMENT_OF_ACTION", 4, "any", False),
    (30, "INCONSISTENT", 0, "empty", False),
    (28, "WRITTEN_STATEMENT_OF_ACTION", 1, "revisit", False),
    (24, "INCONSISTENT", 3, "any", True),
    (17, "WRITTEN_STATEMENT_OF_ACTION", 0, "empty", False),
    (10, "SYSTEMIC_FAILINGS", 2, "any", True),
    (4, "POSITIVE", 2, "any", False),
]

DUPLICATES = 0.0015  # share of events resent unchanged (at least 3)
MALFORMED = 0.012    # share of malformed lines (at least two of every reason code)

# ---------------------------------------------------------------------------- text

FIRST = ["Amelia", "Oliver", "Priya", "Mohammed", "Grace", "Jack", "Chloe", "Tomasz",
         "Aisha", "Liam", "Sophie", "Daniel", "Fatima", "Ewan", "Hannah", "Kwame",
         "Megan", "Ravi", "Siobhan", "Yusuf", "Zara", "Callum", "Niamh", "Oluwaseun"]
LAST = ["Smith", "Jones", "Patel", "Khan", "Taylor", "Brown", "O'Connor", "Williams",
        "Nowak", "Ahmed", "Evans", "Okoye", "Walsh", "Hughes", "Begum", "Fletcher",
        "Murray", "Chowdhury", "Lewis", "Da Silva"]
WARDS = ["Ward 7", "Ward 12", "Elm ward", "Cedar ward", "the respiratory ward",
         "the dementia unit", "the first-floor unit", "the acute medical unit"]

NHSE_TEXT = {
    "SERIOUS_INCIDENT": [
        "Patient {patient} deteriorated on {ward}; early warning score not escalated "
        "for {hours} hours.",
        "Delay in treatment: urgent referral for {patient} not actioned for {days} days.",
        "Fall resulting in a hip fracture; {patient} found on the floor by {staff}.",
        "Medication error: {patient} given a double dose of insulin.",
        "Pressure ulcer (category 3) developed while {patient} was in our care.",
        "Unplanned admission to intensive care after a post-operative bleed."],
    "NEVER_EVENT": [
        "Wrong site surgery: procedure started on the wrong side, stopped by {staff}.",
        "Retained swab found on the post-operative X-ray of {patient}.",
        "Wrong tooth extracted; {patient} informed by {staff}.",
        "Oral medicine given intravenously to {patient}.",
        "Misplaced nasogastric tube not detected before feeding {patient}."],
    "OUTBREAK": [
        "Norovirus outbreak: {n} residents and {m} staff symptomatic; closed to admissions.",
        "COVID-19 outbreak declared after {n} positive tests on {ward}.",
        "Influenza A outbreak on {ward}; {n} cases.",
        "Scabies outbreak: {n} cases confirmed."],
    "VACCINATION_INCIDENT": [
        "Vaccine stored outside the cold chain for {hours} hours; {n} doses given "
        "before it was noticed.",
        "Wrong vaccine given to {patient}.",
        "Expired vaccine batch given to {n} people.",
        "Second dose given to {patient} {days} days early."],
    "WORKFORCE_SHORTFALL": [
        "Night shift ran with {m} of a planned {n} registered nurses.",
        "Agency staff could not be sourced; {ward} closed to admissions.",
        "Staff sickness at {pct}% for the week; rotas not covered.",
        "No registered manager in post; {staff} acting up."],
    "DNACPR_CONCERN": [
        "DNACPR decision recorded for {patient} without discussion with the family.",
        "Blanket DNACPR decisions reported for residents by {staff}.",
        "DNACPR form not available when {patient} collapsed; CPR delayed."],
    "IPC_CONCERN": [
        "Hand hygiene audit on {ward} at {pct}% compliance.",
        "Clinical waste stored in a public corridor.",
        "PPE not worn by staff caring for {patient} in isolation.",
        "C. difficile cases above threshold for the quarter."],
}
CCG_TEXT = {
    "COMPLAINT": [
        "Relative complained that call bells went unanswered for over {mins} minutes.",
        "Family unhappy about communication after {patient} was discharged.",
        "Complaint about {n} missed home care visits in a fortnight.",
        "Complaint about difficulty booking appointments and rude reception staff.",
        "Daughter of {patient} reports lost hearing aids and clothing."],
    "SAFEGUARDING_REFERRAL": [
        "Unexplained bruising on the arms of {patient} reported by {staff}.",
        "Allegation of financial abuse of {patient} by a care worker.",
        "Resident-on-resident assault not referred by the home for {days} days.",
        "Grade 3 pressure ulcer on {patient} not reported to the district nurse.",
        "Concern that {patient} is restrained without a DoLS authorisation."],
    "WHISTLEBLOWING": [
        "Staff member reports night staff sleeping on shift and falsifying checks.",
        "Care worker says medicines are signed for but not given.",
        "Nurse reports pressure from managers not to report incidents.",
        "Staff report rotas filled with untrained agency workers."],
    "QUALITY_CONCERN": [
        "Care plans not reviewed for {months} months.",
        "Audit found medication records incomplete for {n} residents.",
        "Commissioner visit found fire doors wedged open.",
        "Recruitment files missing DBS checks for {n} staff."],
    "CONTRACT_BREACH": [
        "Provider has not submitted quality returns for {months} months.",
        "Agreed staffing levels not met for {n} weeks.",
        "Change of manager not notified to the commissioner."],
    "POSITIVE_FEEDBACK": [
        "Family praised the end-of-life care given to {patient}.",
        "Commissioner visit found a calm, well-led service with engaged staff.",
        "Compliments received about the activities programme.",
        "District nursing team praised the home's record keeping."],
}

# ---------------------------------------------------------------------------- helpers


def iso(ms):
    """UTC ISO-8601 with Z, whole seconds."""
    return datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_exact(ms):
    """UTC ISO-8601 with Z, milliseconds when there are any."""
    return iso(ms) if ms % 1000 == 0 else iso(ms)[:-1] + ".%03dZ" % (ms % 1000)


def parse_iso(s):
    s = s.strip().replace("z", "Z")
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    t = datetime.datetime.fromisoformat(s)
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp() * 1000)


def date_of(ms):
    return datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc) \
        .strftime("%Y-%m-%d")


def midnight(ms):
    return ms - ms % DAY


def uk_offset_minutes(ms):
    """British Summer Time: last Sunday of March 01:00 UTC to last Sunday of October."""
    year = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc).year

    def last_sunday_1am(month):
        last = calendar.monthrange(year, month)[1]
        d = datetime.datetime(year, month, last, 1, tzinfo=datetime.timezone.utc)
        d -= datetime.timedelta(days=(d.weekday() + 1) % 7)
        return int(d.timestamp() * 1000)

    return 60 if last_sunday_1am(3) <= ms < last_sunday_1am(10) else 0


# How a partner writes a timestamp: share of each style.
TIME_STYLES = [("iso", 50), ("iso_millis", 10), ("uk_local", 10), ("epoch_ms", 30)]


def fmt_time(ms, style):
    if style == "epoch_ms":
        return ms
    if style == "iso_millis":
        return iso(ms)[:-1] + ".%03dZ" % (ms % 1000)
    if style == "uk_local":
        off = uk_offset_minutes(ms)
        local = datetime.datetime.fromtimestamp((ms + off * MIN) // 1000,
                                                datetime.timezone.utc)
        return local.strftime("%Y-%m-%dT%H:%M:%S") + "+%02d:%02d" % (off // 60, off % 60)
    return iso(ms)


def poisson(rng, mean):
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def weight(kind, grade):
    return BASE[SIGNAL.get(kind, kind)] * MULT[SEVERITY[grade]]


def score_path(events):
    """(peak, final) of S at each event applied in time order (docs/contract/risk-model.md)."""
    s, as_of, peak = 0.0, None, 0.0
    for t, w in sorted(events):
        s = w if as_of is None else s * 2 ** (-(t - as_of) / HALF_LIFE) + w
        as_of, peak = t, max(peak, s)
    return round(peak, 1), round(s, 1)


# ---------------------------------------------------------------------------- Avro


def zigzag(n):
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def avro_str(s):
    b = s.encode()
    return zigzag(len(b)) + b


def avro_opt(s):
    return zigzag(0) if s is None else zigzag(1) + avro_str(s)


def avro_body(source, v, version=2):
    """Avro binary of a partner record (internal form: timestamps in ms)."""
    if source == "nhse":
        b = b"".join(avro_str(v[f])
                     for f in ("incident_id", "reporting_org_ods", "location_id"))
        b += zigzag(NHSE_CATEGORIES.index(v["category"])) + zigzag(HARMS.index(v["harm"]))
        b += zigzag(v["occurred_at"]) + zigzag(v["reported_at"])
        b += avro_opt(v.get("description"))
        return b + (avro_opt(v.get("vaccination_site_code")) if version == 2 else b"")
    if source == "ccg":
        b = b"".join(avro_str(v[f]) for f in ("concern_ref", "ccg_ods", "location_id"))
        b += zigzag(CONCERN_TYPES.index(v["concern_type"])) + zigzag(RAGS.index(v["rag"]))
        return b + avro_str(v["received_on"]) + avro_opt(v.get("whistleblower_name")) + \
            avro_opt(v.get("narrative"))
    b = avro_str(v["inspection_ref"]) + avro_str(v["local_authority_code"])
    b += zigzag(OUTCOMES.index(v["outcome"])) + zigzag(v["published_at"])
    names = v.get("named_location_ids", [])
    if names:
        b += zigzag(len(names)) + b"".join(avro_str(n) for n in names)
    return b + zigzag(0)


def wire(schema_id, body):
    return b"\x00" + schema_id.to_bytes(4, "big") + body


# ---------------------------------------------------------------------------- feed


class Feed:
    def __init__(self, args, locations, empty_areas):
        self.rng = random.Random(args.seed)
        self.now = args.now_ms
        self.limit = self.now - MIN  # every publication is before this
        self.days = args.days
        self.start = self.now - args.days * DAY
        self.locations = locations
        self.empty_areas = empty_areas
        self.areas = sorted({loc["local_authority_code"] for loc in locations})
        self.area_region = {}
        for loc in locations:
            self.area_region.setdefault(loc["local_authority_code"], loc["region"])
        self.scale = args.scale
        self.messages = {"nhse": [], "ccg": [], "ofsted-send": []}
        self.subjects = []      # manifest entries of interesting subjects
        self.late = []
        self.seq = {}           # reference counters
        self.ofsted_refs = set()

    # -- identities

    def next_seq(self, name, start=1):
        self.seq[name] = self.seq.get(name, start - 1) + 1
        return self.seq[name]

    def reporting_org(self, loc):
        if re.match(r"^[A-Z0-9]{5}$", loc["location_id"]) and \
                re.match(r"^[A-Z0-9]{3,6}$", loc["provider_id"]):
            return loc["provider_id"]  # a trust site: the trust reports
        return NHSE_REGION_ODS.get(loc["region"], "X24")

    def commissioner(self, loc):
        area = loc["local_authority_code"]
        i = self.areas.index(area)
        if self.rng.random() < 0.3:
            return "%02d%s" % (i // 4, "ACHL"[i % 4])  # legacy CCG code
        icbs = ICBS.get(loc["region"], ICBS_OTHER)
        return icbs[i % len(icbs)]

    def incident_id(self, category, occurred):
        year = date_of(occurred)[:4]
        n = self.next_seq("nhse", 10001)
        if category in ("SERIOUS_INCIDENT", "NEVER_EVENT"):
            return "SI/%s/%06d" % (year, n)  # the serious incident system's style
        return "NHSE-%s-%s-%06d" % (REF_PREFIX[category], year, n)

    # -- free text

    def fill(self, template):
        r = self.rng
        return "SYNTHETIC: " + template.format(
            patient="%s. %s" % (r.choice(FIRST)[0], r.choice(LAST)),
            staff="%s %s" % (r.choice(FIRST), r.choice(LAST)), ward=r.choice(WARDS),
            hours=r.randint(2, 14), days=r.randint(2, 21), mins=r.choice([20, 30, 45]),
            n=r.randint(3, 18), m=r.randint(1, 3), pct=r.randint(40, 75),
            months=r.randint(3, 14))

    def person(self):
        return "%s %s (SYNTHETIC)" % (self.rng.choice(FIRST), self.rng.choice(LAST))

    # -- events (value in internal form: timestamps as ms; "style" says how to write them)

    def nhse(self, loc, category, harm, occurred, late_days=0):
        r = self.rng
        if late_days:
            lag = late_days * DAY + r.randint(1, 8) * HOUR
        else:
            lag = r.choices([r.randint(10, 120), r.randint(120, 1440), r.randint(1440, 4320)],
                            [30, 45, 25])[0] * MIN
        publish_lag = r.randint(1, 20) * MIN
        over = occurred + lag + publish_lag - self.limit
        if over > 0:
            occurred -= over + r.randint(0, 60) * MIN
        v = {"incident_id": self.incident_id(category, occurred),
             "reporting_org_ods": self.reporting_org(loc),
             "location_id": loc["location_id"], "category": category, "harm": harm,
             "occurred_at": occurred, "reported_at": occurred + lag}
        pick = r.random()
        if pick < 0.6:
            v["description"] = self.fill(r.choice(NHSE_TEXT[category]))
        elif pick < 0.7:
            v["description"] = None
        if (category == "VACCINATION_INCIDENT" and r.random() < 0.8) or r.random() < 0.03:
            v["vaccination_site_code"] = "F%s%03d" % (r.choice("ABCDHJKLMNPQRTVWXY"),
                                                      r.randint(1, 999))
        return self.add("nhse", loc["location_id"], v, occurred + lag + publish_lag,
                        "NHSE:%s:%s" % (v["reporting_org_ods"], v["incident_id"]),
                        occurred, weight(category, harm))

    def ccg(self, loc, concern_type, rag, occurred, late_days=0):
        r = self.rng
        day = midnight(occurred)
        publish = day + r.randint(8 * 60, 19 * 60) * MIN + r.choice([0, 0, 0, 1, 2]) * DAY
        publish += late_days * DAY
        if publish > self.limit:
            publish = self.limit - r.randint(0, 120) * MIN
            if publish < day:
                day -= DAY
        ods = self.commissioner(loc)
        ref = ("%s-C%06d" if ods.startswith("Q") else "%s/C/%06d") % (
            ods, self.next_seq("ccg", 40001))
        v = {"concern_ref": ref, "ccg_ods": ods, "location_id": loc["location_id"],
             "concern_type": concern_type, "rag": rag, "received_on": date_of(day)}
        if concern_type == "WHISTLEBLOWING":
            v["whistleblower_name"] = self.person() if r.random() < 0.75 else None
        pick = r.random()
        if pick < 0.65:
            v["narrative"] = self.fill(r.choice(CCG_TEXT[concern_type]))
        elif pick < 0.72:
            v["narrative"] = None
        return self.add("ccg", loc["location_id"], v, publish,
                        "CCG:%s:%s" % (ods, ref), day, weight(concern_type, rag))

    def ofsted(self, area, outcome, days_ago, named):
        r = self.rng
        day = midnight(self.now - days_ago * DAY)
        while datetime.datetime.fromtimestamp(day // 1000, datetime.timezone.utc).weekday() > 4:
            day -= DAY  # reports come out on weekdays
        published = day + (9 * 60 + 30 + r.randint(0, 150)) * MIN
        publish = min(published + r.randint(5, 90) * 1000, self.limit)
        published = min(published, publish)
        while True:
            ref = "OFS-SEND-%06d" % r.randint(100000, 999999)
            if ref not in self.ofsted_refs:
                self.ofsted_refs.add(ref)
                break
        v = {"inspection_ref": ref, "local_authority_code": area, "outcome": outcome,
             "published_at": published}
        if named or r.random() < 0.5:
            v["named_location_ids"] = named
        return self.add("ofsted-send", area, v, publish,
                        "OFSTED_SEND:%s:%s" % (area, ref), published,
                        weight("SEND_OUTCOME", outcome))

    def add(self, topic, key, value, publish, event_key, occurred, w):
        style = self.rng.choices([s for s, _ in TIME_STYLES], [n for _, n in TIME_STYLES])[0]
        msg = {"topic": topic, "key": key, "value": value, "publish": publish,
               "event_key": event_key, "occurred": occurred, "weight": w, "style": style,
               "n": len(self.messages[topic])}
        self.messages[topic].append(msg)
        return msg

    def event(self, loc, source, kind, grade, occurred, late_days=0):
        if source == "N":
            return self.nhse(loc, kind, grade, occurred, late_days)
        return self.ccg(loc, kind, grade, occurred, late_days)

    # -- scenarios

    def pick(self, free, where, n):
        pool = [loc for loc in free if where is None or loc["service_type"] in where]
        if len(pool) < n:
            pool = list(free)
        chosen = self.rng.sample(pool, min(n, len(pool)))
        for loc in chosen:
            free.remove(loc)
        return chosen

    def scripted(self, free):
        r = self.rng
        for script in SCRIPTS:
            longest = max(step[0] for step in script["steps"])
            if longest + 1 > self.days:
                continue  # needs more history than --days
            n = max(1, round(script["share"] * len(self.locations)))
            for loc in self.pick(free, script["where"], n):
                shift = r.uniform(0, min(3, self.days - 1 - longest))
                msgs = []
                for step in script["steps"]:
                    days_ago, source, kind, grade = step[:4]
                    late = step[4] if len(step) > 4 else 0
                    t = self.now - (days_ago + shift) * DAY + r.uniform(-0.4, 0.4) * DAY
                    m = self.event(loc, source, kind, grade, int(t), late)
                    msgs.append(m)
                    if late:
                        self.late.append(m)
                self.subject("LOCATION", loc["location_id"], script["name"],
                             script["expect"], msgs)

    def send_outcomes(self, free):
        r = self.rng
        by_area = {}
        for loc in free:
            by_area.setdefault(loc["local_authority_code"], []).append(loc)
        areas = [a for a in sorted(by_area) if len(by_area[a]) >= 6]
        r.shuffle(areas)
        empties = list(self.empty_areas)
        revisit = areas.pop() if areas else None
        for days_ago, outcome, n_named, kind, repeat in SEND_OUTCOMES:
            if days_ago + 1 > self.days:
                continue
            if kind == "empty":
                area = empties.pop(0) if empties else None
            elif kind == "revisit":
                area = revisit
            else:
                area = areas.pop() if areas else None
            if area is None:
                continue  # a small directory: not enough areas
            named = [loc for loc in r.sample(by_area.get(area, []),
                                             min(n_named, len(by_area.get(area, []))))]
            for loc in named:
                free.remove(loc)
                by_area[area].remove(loc)
            ids = [loc["location_id"] for loc in named]
            if repeat and ids:
                ids.insert(r.randint(0, len(ids)), r.choice(ids))
            m = self.ofsted(area, outcome, days_ago, ids)
            region = self.area_region.get(area, "UNKNOWN")
            expect = ["RAISED WATCH"] if SEVERITY[outcome] == "HIGH" else []
            self.subject("LOCAL_AREA", area,
                         "send_revisit" if kind == "revisit" else "send_" + outcome.lower(),
                         expect, [m], region=region)
            for loc in named:
                w = weight("SEND_OUTCOME", outcome)
                self.subject("LOCATION", loc["location_id"], "named_in_send_report",
                             ["RAISED WATCH"] if w >= 40 else [], [m], weight=w)

    def subject(self, kind, sid, scenario, expect, msgs, region=None, weight=None):
        for s in self.subjects:
            if s["subject"] == "%s:%s" % (kind, sid):  # an area inspected twice
                s["events"] += [m["event_key"] for m in msgs]
                s["_msgs"] += msgs
                return
        self.subjects.append({"subject": "%s:%s" % (kind, sid), "scenario": scenario,
                              "expect": expect, "events": [m["event_key"] for m in msgs],
                              "_msgs": msgs, "_weight": weight, "region": region})

    def background(self, locs):
        r = self.rng
        scale = self.scale * self.days / 90
        for loc in locs:
            n = poisson(r, RATE.get(loc["service_type"], RATE_OTHER) * scale)
            kinds = [q for q in QUIET if q[4] is None or loc["service_type"] in q[4]]
            times = sorted(r.randint(self.start + DAY, self.now - HOUR) for _ in range(n))
            history = []  # (occurred, weight) of this location's events so far
            for t in times:
                source, kind, grade, _, _ = r.choices(kinds, [q[3] for q in kinds])[0]
                at = midnight(t) if source == "C" else t
                score = sum(w * 2 ** (-(at - ti) / HALF_LIFE) for ti, w in history if ti <= at)
                if score + weight(kind, grade) >= QUIET_CAP:  # keep quiet locations quiet
                    kind, grade = ("POSITIVE_FEEDBACK", "GREEN") if source == "C" \
                        else (kind, "NO_HARM")
                late = r.randint(5, 20) if source == "N" and r.random() < QUIET_LATE else 0
                m = self.event(loc, source, kind, grade, t, late)
                if late:
                    self.late.append(m)
                history.append((m["occurred"], m["weight"]))

    def duplicates(self):
        r = self.rng
        pool = [m for topic in ("nhse", "ccg") for m in self.messages[topic]]
        n = max(3, round(DUPLICATES * len(pool)))
        chosen = r.sample(pool, min(n, len(pool)))
        critical = [m for m in pool
                    if m["weight"] >= 80 or m["value"].get("category") == "NEVER_EVENT"]
        if critical:  # a resent critical incident must not alert twice
            pick = r.choice(critical)
            if pick not in chosen:
                chosen[0] = pick
        if self.messages["ofsted-send"]:
            chosen.append(r.choice(self.messages["ofsted-send"]))
        dups = []
        for m in chosen:
            publish = m["publish"] + r.randint(1, 48 * 60) * MIN
            if publish > self.limit:
                publish = m["publish"] + (self.limit - m["publish"]) // 2
            d = dict(m, publish=publish, n=len(self.messages[m["topic"]]), dup_of=m["n"])
            self.messages[m["topic"]].append(d)
            dups.append(d)
        return dups

    # -- output

    def line(self, m):
        v = dict(m["value"])
        for f in ("occurred_at", "reported_at", "published_at"):
            if f in v:
                v[f] = fmt_time(v[f], m["style"])
        return json.dumps({"key": m["key"], "value": v, "publish_at_ms": m["publish"]})


# ---------------------------------------------------------------------------- malformed


def drop(field):
    return lambda b, v: {k: x for k, x in v.items() if k != field}


def put(field, value):
    """Sets field to value, or to value(breaker, event) when value is a function."""
    return lambda b, v: dict(v, **{field: value(b, v) if callable(value) else value})


def text(edit):
    """Raw text made from the event's JSON text."""
    return lambda b, v: edit(json.dumps(v))


# How to break a good event, for each reason code of docs/contract/reason-codes.md: (reason, topic, what it
# is, the expected cs.error.field, breaker). A breaker gets the Breaker and the event
# (JSON form; internal form for the Avro rows) and returns a dict (sent as JSON), a str
# (sent as is) or bytes (Avro). Every row is used once, then rows other than TOO_LARGE
# are cycled to reach the wanted count.
BREAKERS = [
    ("JSON_SYNTAX", "nhse", "cut off in transit", "",
     text(lambda s: s[:len(s) // 2])),
    ("JSON_SYNTAX", "ccg", "trailing comma", "",
     text(lambda s: s[:-1] + ", }")),
    ("JSON_SYNTAX", "ofsted-send", "single-quoted strings", "",
     text(lambda s: s.replace('"', "'"))),
    ("JSON_SYNTAX", "nhse", "two events in one message", "",
     text(lambda s: s + " " + s)),
    ("JSON_SYNTAX", "ccg", "a field given twice", "",
     text(lambda s: s[:-1] + ', "rag": "GREEN"}')),
    ("NOT_OBJECT", "nhse", "a batch sent as an array", "",
     text(lambda s: "[" + s + "]")),
    ("NOT_OBJECT", "ccg", "the event JSON-encoded twice (a string)", "",
     text(json.dumps)),
    ("NOT_OBJECT", "ofsted-send", "null", "",
     text(lambda s: "null")),
    ("NOT_OBJECT", "nhse", "a bare number", "",
     text(lambda s: "42")),
    ("FIELD_MISSING", "nhse", "no location_id", "location_id",
     drop("location_id")),
    ("FIELD_MISSING", "ccg", "no rag", "rag",
     drop("rag")),
    ("FIELD_MISSING", "ofsted-send", "no outcome", "outcome",
     drop("outcome")),
    ("FIELD_MISSING", "nhse", "no occurred_at", "occurred_at",
     drop("occurred_at")),
    ("FIELD_MISSING", "ccg", "no received_on", "received_on",
     drop("received_on")),
    ("FIELD_TYPE", "nhse", "harm as a number", "harm",
     put("harm", 3)),
    ("FIELD_TYPE", "ccg", "location_id as a number", "location_id",
     put("location_id", 101669119)),
    ("FIELD_TYPE", "nhse", "incident_id null", "incident_id",
     put("incident_id", None)),
    ("FIELD_TYPE", "ofsted-send", "named_location_ids as a string", "named_location_ids",
     put("named_location_ids", lambda b, v: b.any_location())),
    ("FIELD_TYPE", "ccg", "narrative as an object", "narrative",
     put("narrative", {"text": "SYNTHETIC: nested narrative"})),
    ("ENUM_UNKNOWN", "nhse", "category in lower case", "category",
     put("category", lambda b, v: v["category"].lower())),
    ("ENUM_UNKNOWN", "nhse", "harm CATASTROPHIC", "harm",
     put("harm", "CATASTROPHIC")),
    ("ENUM_UNKNOWN", "ccg", "rag Amber", "rag",
     put("rag", "Amber")),
    ("ENUM_UNKNOWN", "ccg", "concern_type SAFEGUARDING (caresignal's name, not the partner's)",
     "concern_type", put("concern_type", "SAFEGUARDING")),
    ("ENUM_UNKNOWN", "ofsted-send", "outcome GOOD", "outcome",
     put("outcome", "GOOD")),
    ("ID_FORMAT", "nhse", "location id too short", "location_id",
     put("location_id", "1-1234567")),
    ("ID_FORMAT", "nhse", "incident_id with ':'", "incident_id",
     put("incident_id", lambda b, v: "INC:" + v["incident_id"])),
    ("ID_FORMAT", "ccg", "ccg_ods in lower case", "ccg_ods",
     put("ccg_ods", lambda b, v: v["ccg_ods"].lower())),
    ("ID_FORMAT", "ccg", "concern_ref with '#'", "concern_ref",
     put("concern_ref", lambda b, v: v["concern_ref"] + "#2")),
    ("ID_FORMAT", "ofsted-send", "a Welsh GSS code", "local_authority_code",
     put("local_authority_code", "W06000015")),
    ("ID_FORMAT", "ofsted-send", "a named id that is no location id", "named_location_ids[1]",
     put("named_location_ids", lambda b, v: [b.any_location(), "1-12"])),
    ("TIME_RANGE", "nhse", "occurred_at a year after publication", "occurred_at",
     put("occurred_at", lambda b, v: b.when(b.now + 400 * DAY))),
    ("TIME_RANGE", "nhse", "occurred_at older than the 396-day horizon", "occurred_at",
     put("occurred_at", lambda b, v: b.when(b.now - 800 * DAY))),
    ("TIME_RANGE", "ccg", "received_on a year after publication", "received_on",
     put("received_on", lambda b, v: date_of(b.now + 400 * DAY))),
    ("TIME_RANGE", "ofsted-send", "published_at in the far future", "published_at",
     put("published_at", lambda b, v: b.when(b.now + 3 * 365 * DAY))),
    ("TOO_LARGE", "nhse", "a 70 kB description", "",
     put("description", "SYNTHETIC: " + "unit log. " * 7000)),
    ("TOO_LARGE", "ccg", "an 80 kB narrative", "",
     put("narrative", "SYNTHETIC: " + "call transcript. " * 4800)),
    ("UNKNOWN_LOCATION", "nhse", "a location registered after the directory was built",
     "location_id", put("location_id", lambda b, v: b.unknown_location("cqc"))),
    ("UNKNOWN_LOCATION", "ccg", "a trust site the directory does not list", "location_id",
     put("location_id", lambda b, v: b.unknown_location("ods"))),
    ("UNKNOWN_LOCATION", "ofsted-send", "names a location not in the directory",
     "named_location_ids[1]",
     put("named_location_ids", lambda b, v: [b.any_location(), b.unknown_location("cqc")])),
    ("SCHEMA_UNKNOWN", "nhse", "a CCG concern (schema id 3) on the NHSE topic", "",
     lambda b, v: wire(3, avro_body("ccg", b.good("ccg")))),
    ("SCHEMA_UNKNOWN", "ccg", "an unregistered schema id 7", "",
     lambda b, v: wire(7, avro_body("ccg", v))),
    ("SCHEMA_UNKNOWN", "ofsted-send", "an NHSE incident (schema id 1)", "",
     lambda b, v: wire(1, avro_body("nhse", b.good("nhse"), 1))),
    ("AVRO_DECODE", "nhse", "Avro body cut off inside location_id", "",
     lambda b, v: wire(2, avro_body("nhse", v)[:len(avro_str(v["incident_id"]))
                                              + len(avro_str(v["reporting_org_ods"])) + 4])),
    ("AVRO_DECODE", "ccg", "shorter than the wire header", "",
     lambda b, v: b"\x00\x00\x00"),
    ("AVRO_DECODE", "ofsted-send", "a string length of 1 TiB", "",
     lambda b, v: wire(4, zigzag(1 << 40) + b"OFS-SEND")),
    ("AVRO_DECODE", "nhse", "header only, no body", "",
     lambda b, v: wire(1, b"")),
]


class Breaker:
    """Builds malformed messages from good events made for the purpose (not in the feed)."""

    def __init__(self, feed):
        self.feed, self.rng, self.now = feed, feed.rng, feed.now
        self.known = {loc["location_id"] for loc in feed.locations}
        self.style = "iso"

    def when(self, ms):
        """A broken time, written the way this partner writes times."""
        return fmt_time(ms, self.style)

    def any_location(self):
        return self.rng.choice(self.feed.locations)["location_id"]

    def unknown_location(self, kind):
        while True:
            if kind == "cqc":
                s = "1-1%08d" % self.rng.randrange(10 ** 8)
            else:
                s = "R%s%s%02d" % (self.rng.choice("ABCDEFGHJKLMNPQRTVWXY"),
                                   self.rng.choice("0123456789ABCDEFGHJKLMNPQRTVWXY"),
                                   self.rng.randint(1, 9))
            if s not in self.known:
                return s

    def good_msg(self, topic):
        f, r = self.feed, self.rng
        t = r.randint(f.start + DAY, f.now - DAY)
        if topic == "ofsted-send":
            area = r.choice(f.areas)
            named = [loc["location_id"] for loc in f.locations
                     if loc["local_authority_code"] == area][:1]
            m = f.ofsted(area, r.choice(OUTCOMES), (f.now - t) // DAY, named)
        elif topic == "nhse":
            m = f.nhse(r.choice(f.locations), r.choice(NHSE_CATEGORIES), r.choice(HARMS[:3]), t)
        else:
            m = f.ccg(r.choice(f.locations), r.choice(CONCERN_TYPES), r.choice(RAGS), t)
        f.messages[topic].pop()  # made to be broken: not part of the feed
        return m

    def good(self, topic):
        return self.good_msg(topic)["value"]

    def make(self, row):
        reason, topic, note, field, breaker = row
        m = self.good_msg(topic)
        self.style = m["style"]
        avro = reason in ("SCHEMA_UNKNOWN", "AVRO_DECODE")
        bad = breaker(self, m["value"] if avro else json.loads(self.feed.line(m))["value"])
        out = {"topic": topic, "key": m["key"]}
        if isinstance(bad, bytes):
            out["value_hex"] = bad.hex()
        else:
            out["value_text"] = bad if isinstance(bad, str) else json.dumps(bad)
        if isinstance(bad, dict) and isinstance(bad.get("location_id"), str):
            out["key"] = bad["location_id"]  # NHSE and CCG key by location
        out.update({"expect": reason, "field": field, "publish_at_ms": m["publish"],
                    "note": note})
        return out


def malformed(feed, n_valid):
    breaker = Breaker(feed)
    want = max(len(BREAKERS), round(MALFORMED * n_valid))
    rows = list(BREAKERS)
    small = [row for row in BREAKERS if row[0] != "TOO_LARGE"]  # 70 kB each: once will do
    for i in range(want - len(rows)):
        rows.append(small[i % len(small)])
    out = [breaker.make(row) for row in rows]
    out.sort(key=lambda o: o["publish_at_ms"])
    return out


# ---------------------------------------------------------------------------- main


def load_directory(path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit("gen-feed: %s: no locations" % path)
    return rows


def empty_areas_of(locations):
    """The local areas gen-directory.py leaves empty, when they are empty here too."""
    here = os.path.dirname(os.path.abspath(__file__))
    areas = ["E09000001", "E06000053", "E06000017", "E08000023", "E06000039"]
    try:
        sys.dont_write_bytecode = True
        import importlib.util
        spec = importlib.util.spec_from_file_location(
            "gen_directory", os.path.join(here, "gen-directory.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        areas = list(mod.EMPTY_AREAS)
    except (OSError, AttributeError, ImportError):
        pass
    used = {loc["local_authority_code"] for loc in locations}
    return [a for a in areas if a not in used]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(
        description="Generate a synthetic partner feed (JSON lines) for the dev stack.",
        epilog="Example: deploy/dev/gen-feed.py --out-dir /tmp/feed --seed 7 --scale 0.2")
    ap.add_argument("--directory", default=os.path.join(here, "data", "directory.csv"),
                    help="location directory CSV [deploy/dev/data/directory.csv]")
    ap.add_argument("--days", type=int, default=90, help="days of history [90]")
    ap.add_argument("--now", help="ISO-8601 end of the feed; every event is before it "
                                  "[now, rounded down to the minute]")
    ap.add_argument("--seed", type=int, default=1, help="random seed [1]")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiplies the background volume [1.0: ~7,500 events]")
    ap.add_argument("--out-dir", required=True, help="directory for the output files")
    args = ap.parse_args()
    if args.days < 1 or args.days > 390:
        ap.error("--days must be 1..390 (TIME_RANGE rejects events older than 396 days)")
    if args.scale < 0:
        ap.error("--scale must be >= 0")
    if args.now:
        try:
            args.now_ms = parse_iso(args.now)
        except ValueError:
            ap.error("--now: not an ISO-8601 time: %s" % args.now)
    else:
        args.now_ms = int(datetime.datetime.now(datetime.timezone.utc).timestamp()) * 1000
        args.now_ms -= args.now_ms % MIN

    locations = load_directory(args.directory)
    with open(args.directory, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    shown_directory = args.directory
    if os.path.abspath(args.directory) == os.path.join(here, "data", "directory.csv"):
        shown_directory = "deploy/dev/data/directory.csv"  # the same on every checkout
    feed = Feed(args, locations, empty_areas_of(locations))
    free = list(locations)
    feed.scripted(free)
    feed.send_outcomes(free)
    feed.background(free)
    dups = feed.duplicates()

    os.makedirs(args.out_dir, exist_ok=True)
    counts = {}
    files = {"nhse": "nhse.jsonl", "ccg": "ccg.jsonl", "ofsted-send": "ofsted.jsonl"}
    for topic, name in files.items():
        msgs = sorted(feed.messages[topic], key=lambda m: (m["publish"], m["n"]))
        with open(os.path.join(args.out_dir, name), "w") as f:
            for m in msgs:
                f.write(feed.line(m) + "\n")
        counts[name] = len(msgs)
    n_valid = sum(counts.values())
    bad = malformed(feed, n_valid)
    with open(os.path.join(args.out_dir, "malformed.jsonl"), "w") as f:
        for b in bad:
            f.write(json.dumps(b) + "\n")
    counts["malformed.jsonl"] = len(bad)

    canonical = sum(1 + len(set(m["value"].get("named_location_ids", [])))
                    if t == "ofsted-send" else 1
                    for t, ms in feed.messages.items() for m in ms)
    styles = {}
    for ms in feed.messages.values():
        for m in ms:
            styles[m["style"]] = styles.get(m["style"], 0) + 1
    subjects = []
    for s in sorted(feed.subjects, key=lambda s: (s["scenario"], s["subject"])):
        w = s["_weight"]
        peak, final = score_path([(m["occurred"], m["weight"] if w is None else w)
                                  for m in s["_msgs"]])
        entry = {"subject": s["subject"], "scenario": s["scenario"], "expect": s["expect"],
                 "peak_score": peak, "final_score": final, "events": s["events"]}
        if s["region"]:
            entry["region"] = s["region"]
        subjects.append(entry)
    scenarios = {}
    for s in subjects:
        scenarios[s["scenario"]] = scenarios.get(s["scenario"], 0) + 1
    about = {sc["name"]: sc["about"] for sc in SCRIPTS}
    manifest = {
        "generator": "deploy/dev/gen-feed.py",
        "arguments": {"directory": shown_directory, "days": args.days,
                      "now": iso_exact(args.now_ms), "seed": args.seed, "scale": args.scale},
        "directory_sha256": digest,
        "now": iso_exact(args.now_ms), "now_ms": args.now_ms,
        "window": {"from": iso(feed.start), "to": iso(args.now_ms)},
        "counts": counts,
        "canonical_events": canonical,
        "distinct_event_keys": canonical - sum(
            1 + len(set(d["value"].get("named_location_ids", [])))
            if d["topic"] == "ofsted-send" else 1 for d in dups),
        "timestamp_styles": dict(sorted(styles.items())),
        "malformed_by_reason": dict(sorted(
            (r, sum(1 for b in bad if b["expect"] == r)) for r in {b["expect"] for b in bad})),
        "empty_areas": feed.empty_areas,
        "scenarios": {name: {"subjects": n, "about": about.get(name, "")}
                      for name, n in sorted(scenarios.items())},
        "notes": [
            "expect: the alerts each scripted subject produces under docs/contract/risk-model.md's default "
            "rules, in order, as '<kind> <level>[ <reason>]'; peak_score and final_score "
            "are S at its events applied in time order",
            "scripted subjects get no other events; every other location is quiet "
            "(its score stays below %d)" % QUIET_CAP,
            "keys are location ids (NHSE, CCG) and GSS codes (Ofsted): publishing each "
            "file in order keeps every subject's order within its topic",
        ],
        "subjects": subjects,
        "duplicates": [{"file": files[d["topic"]], "key": d["key"], "event_key": d["event_key"],
                        "publish_at_ms": d["publish"]} for d in dups],
        "late_reports": [{"file": files[m["topic"]], "event_key": m["event_key"],
                          "occurred": iso(m["occurred"]), "publish_at_ms": m["publish"],
                          "days_late": round((m["publish"] - m["occurred"]) / DAY, 1)}
                         for m in sorted(feed.late, key=lambda m: m["event_key"])],
    }
    with open(os.path.join(args.out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print("gen-feed: %s: %s, %d canonical events, %d scripted subjects" % (
        args.out_dir, ", ".join("%s %d" % kv for kv in counts.items()), canonical,
        len(subjects)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
