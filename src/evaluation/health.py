"""Collapse and divergence, told when they happen rather than found in the samples later.

A DCGAN run goes wrong in a few recognisable ways (Radford et al. §4; Goodfellow's NIPS 2016 tutorial §5):
  - D saturates: D(x) -> 1 and D(G(z)) -> 0 for many steps; G's gradient vanishes and it stops improving.
  - the losses explode: D's or G's loss far above anything the run has shown.
  - the samples get sharply worse: the quality metric rises well above the best for consecutive measurements
    (mode collapse usually shows here first).
`TrainingHealth` watches the logged records and the quality measurements and returns one line per new finding,
with what to try; the trainer logs it, and status.json and the report keep it. The best checkpoint is untouched:
it is still chosen by the quality metric alone, so a collapse never replaces it.
"""
import math

SATURATED_D_X, SATURATED_D_G_Z = 0.99, 0.01  # D's mean outputs on real and fake batches beyond which D has won
SATURATION_STEPS = 200  # ...for at least this many consecutive steps
LOSS_EXPLOSION = 10.0  # a loss this many times the run's median logged loss so far (and above EXPLOSION_FLOOR)
EXPLOSION_FLOOR = 15.0
HISTORY = 500  # logged values the median is taken over
QUALITY_WORSE = 2.0  # a quality measurement this many times the best one...
QUALITY_WORSE_COUNT = 2  # ...this many measurements in a row


class TrainingHealth:
    def __init__(self):
        self.saturated_since = None
        self.losses = {"loss_d": [], "loss_g": []}
        self.worse_in_a_row = 0
        self.findings = []  # {"kind", "step", "message"}, oldest first
        self.told = set()  # kinds told and not yet recovered from: each is said once per episode

    def check_step(self, record):
        """After a logged step (a metrics.jsonl record): D saturation and exploding losses."""
        found = []
        step = record["step"]
        if record["d_x"] > SATURATED_D_X and record["d_g_z1"] < SATURATED_D_G_Z:
            self.saturated_since = self.saturated_since or step
            if step - self.saturated_since >= SATURATION_STEPS:
                found += self._tell("saturated", step, (
                    f"D has saturated since step {self.saturated_since} (D(x) {record['d_x']:.3f}, D(G(z)) "
                    f"{record['d_g_z1']:.3f}): G gets almost no gradient. Try a smaller --lr_d, --ema_decay if off, "
                    f"or resume from the best checkpoint with other settings"))
        else:
            self.saturated_since = None
            self.told.discard("saturated")
        for name, history in self.losses.items():
            value = record[name]
            if history and math.isfinite(value):
                median = sorted(history)[len(history) // 2]
                if value > EXPLOSION_FLOOR and value > LOSS_EXPLOSION * max(median, 1e-3):
                    found += self._tell(f"exploding_{name}", step, (
                        f"{name} is exploding: {value:.3g} at step {step} against a median of {median:.3g} so far. "
                        f"Try a smaller --lr / --lr_d, or resume from the best checkpoint"))
                else:
                    self.told.discard(f"exploding_{name}")
            history.append(value)
            del history[:-HISTORY]  # a bounded window: the median stays cheap over a multi-day run
        return found

    def check_quality(self, record, best):
        """After a quality measurement: a sharp worsening against the best one, QUALITY_WORSE_COUNT times in a row."""
        primary = record.get("primary")
        value, best_value = record.get(primary), best.get(primary) if best else None
        if not isinstance(value, float) or not isinstance(best_value, (int, float)) or best is record:
            return []
        if value > QUALITY_WORSE * best_value:
            self.worse_in_a_row += 1
            if self.worse_in_a_row >= QUALITY_WORSE_COUNT:
                return self._tell("quality", record["step"], (
                    f"sample quality has worsened sharply: {primary} {value:.4g} at step {record['step']} against "
                    f"the best {best_value:.4g} at step {best['step']} ({self.worse_in_a_row} measurements in a row; "
                    f"mode collapse?). The best checkpoint is kept; eval.py and export.py use it"))
        else:
            self.worse_in_a_row = 0
            self.told.discard("quality")
        return []

    def _tell(self, kind, step, message):
        if kind in self.told:
            return []
        self.told.add(kind)
        self.findings.append({"kind": kind, "step": step, "message": message})
        return [message]
