"""An independent model of docs/contract/risk-model.md, written from the design text (not from lib/risk.lua),
for integration tests to predict alerts and final scores. It reads the numbers from a rules
file, so what-if tests can run it under other rules too."""
import hashlib
import json

SIGNALS = ["SERIOUS_INCIDENT", "NEVER_EVENT", "OUTBREAK", "VACCINATION_INCIDENT",
           "WORKFORCE_SHORTFALL", "DNACPR_CONCERN", "IPC_CONCERN", "COMPLAINT", "SAFEGUARDING",
           "WHISTLEBLOWING", "QUALITY_CONCERN", "CONTRACT_BREACH", "POSITIVE_FEEDBACK",
           "SEND_OUTCOME"]
AREAS = ["SAFE_CARE", "STAFFING", "PROTECTION_FROM_ABUSE", "ASSURANCE"]
SEVERITIES = ["INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
LEVELS = ["NONE", "WATCH", "INSPECT"]
DAY = 86400000


def alert_id(subject_key, kind, level, triggered_by):
    text = "%s|%s|%s|%s" % (subject_key, kind, level, triggered_by)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Rules:
    def __init__(self, path):
        with open(path) as f:
            r = json.load(f)
        self.version = r["version"]
        risk = r["risk"]
        self.half_life = risk["half_life_days"] * DAY
        self.base = risk["base"]
        self.mult = risk["severity_multiplier"]
        self.assurance = set(risk.get("assurance_signals", []))
        self.levels = risk["levels"]
        self.hold = risk["immediate"]["hold_days"] * DAY
        self.immediate = risk["immediate"]["rules"]
        self.area_of = r["mapping"]["areas"]

    def weight(self, signal, severity):
        return self.base[signal] * self.mult[severity]

    def is_immediate(self, signal, severity, area):
        for rule in self.immediate:
            if "signals" in rule and signal not in rule["signals"]:
                continue
            if "severities" in rule and severity not in rule["severities"]:
                continue
            if "areas" in rule and area not in rule["areas"]:
                continue
            return True
        return False


class Subject:
    def __init__(self, kind, subject_id):
        self.kind, self.subject_id = kind, subject_id
        self.key = "%s:%s" % (kind, subject_id)
        self.s = 0.0
        self.as_of = None
        self.areas = {a: 0.0 for a in AREAS}
        self.level = "NONE"
        self.imm_at = None
        self.seen = set()
        self.assurance = 0


class Model:
    """Apply events subject by subject in the order the scorer sees them."""

    def __init__(self, rules):
        self.rules = rules
        self.subjects = {}
        self.alerts = []  # dicts: alert_id, subject, kind, level, previous_level, reason, score, ...

    def subject(self, kind, sid):
        key = "%s:%s" % (kind, sid)
        if key not in self.subjects:
            self.subjects[key] = Subject(kind, sid)
        return self.subjects[key]

    def apply(self, ev):
        """ev: dict with event_key, subject_kind, subject_id, signal, severity, occurred_at
        (area derived from the rules' mapping)."""
        r = self.rules
        sub = self.subject(ev["subject_kind"], ev["subject_id"])
        if ev["event_key"] in sub.seen:
            return None
        sub.seen.add(ev["event_key"])
        sig, sev, t = ev["signal"], ev["severity"], ev["occurred_at"]
        area = r.area_of[sig]
        w = r.weight(sig, sev)
        if sub.as_of is None:
            sub.s = w
            sub.areas[area] = w
            sub.as_of = t
        elif t >= sub.as_of:
            f = 2 ** (-(t - sub.as_of) / r.half_life)
            sub.s = sub.s * f + w
            for a in AREAS:
                sub.areas[a] *= f
            sub.areas[area] += w
            sub.as_of = t
        else:
            dw = w * 2 ** (-(sub.as_of - t) / r.half_life)
            sub.s += dw
            sub.areas[area] += dw
        if sig in r.assurance:
            sub.assurance += 1
        L = r.levels[sub.kind]
        old = sub.level
        new, reason = old, "THRESHOLD"
        if r.is_immediate(sig, sev, area) and sub.as_of - t < r.hold:
            sub.imm_at = t if sub.imm_at is None else max(sub.imm_at, t)
            if old != "INSPECT":
                new, reason = "INSPECT", "IMMEDIATE"
        else:
            hold = sub.imm_at is not None and sub.as_of - sub.imm_at < r.hold
            up = "NONE"
            if sub.s >= L["inspect"]["raise"]:
                up = "INSPECT"
            elif sub.s >= L["watch"]["raise"]:
                up = "WATCH"
            if LEVELS.index(up) > LEVELS.index(old):
                new = up
            elif old == "INSPECT" and not hold and sub.s < L["inspect"]["clear"]:
                new = "NONE" if sub.s < L["watch"]["clear"] else "WATCH"
            elif old == "WATCH" and sub.s < L["watch"]["clear"]:
                new = "NONE"
        if new == old:
            return None
        kind = "RAISED" if LEVELS.index(new) > LEVELS.index(old) else "CLEARED"
        sub.level = new
        alert = {"alert_id": alert_id(sub.key, kind, new, ev["event_key"]), "subject": sub.key,
                 "kind": kind, "level": new, "previous_level": old, "reason": reason,
                 "score": sub.s, "as_of": sub.as_of, "triggered_by": ev["event_key"]}
        self.alerts.append(alert)
        return alert

    def decayed(self, key, now):
        sub = self.subjects[key]
        if sub.as_of is None or now <= sub.as_of:
            return sub.s
        return sub.s * 2 ** (-(now - sub.as_of) / self.rules.half_life)
