"""The demo's data: realistic sessions in every status, and a simulator that moves them.

Everything here writes through the models, as the API does (status changes append their
`status.changed` events, product objects get their hash), so what a front end sees of a
demo is what it will see of the real service.
"""
from .models import ApiKey, DomainError, Session, TERMINAL_STATUSES

from . import clock

DEMO_USER = "demo_user"
DEMO_ORG = "demo_org"
LIFECYCLE = ("intake", "planning", "generating", "assembling", "completed")
# Products the demo generates: (title, description, kind).
PRODUCTS = (
    ("AI Customer Support", "An AI-powered customer support product", "support-agent"),
    ("AI Content Generator", "Drafts blog posts and product copy in a brand's voice",
     "text-generation"),
    ("Meeting Notes Summarizer", "Turns call recordings into decisions and action items",
     "summarization"),
    ("Invoice Extractor", "Reads supplier invoices into structured ledger entries",
     "document-extraction"),
    ("Sales Email Assistant", "Writes follow-ups from CRM notes", "text-generation"),
    ("Code Review Bot", "Comments on pull requests with fixes", "code-review"),
    ("Recipe Planner", "Plans a week of meals from what is in the fridge", "planner"),
    ("Travel Concierge", "Books and rebooks trips from a chat", "support-agent"),
    ("Legal Clause Checker", "Flags risky clauses in contracts", "classification"),
    ("Onboarding Tutor", "Answers new hires' questions from the handbook", "rag-assistant"),
    ("Churn Predictor", "Scores accounts at risk from usage data", "prediction"),
    ("Podcast Clipper", "Finds the best 60 seconds of an episode", "summarization"),
    ("Support Ticket Router", "Sends each ticket to the right team", "classification"),
    ("Product Description Writer", "Writes catalog entries from specs", "text-generation"),
    ("Interview Scheduler", "Finds times that suit every interviewer", "planner"),
    ("Research Digest", "Summarizes new papers in a field every morning", "rag-assistant"),
)
COMPONENTS = ("intent classifier", "knowledge base", "response generator", "guardrails",
              "evaluation suite", "analytics dashboard", "API gateway", "admin console")
# The statuses the seeded sessions end in (each at least once; 14 in all).
SEEDED_STATUSES = ("intake", "planning", "generating", "generating", "assembling",
                   "assembling", "completed", "completed", "completed", "failed", "failed",
                   "cancelled", "planning", "intake")


def issue_demo_key(now=None):
    """A new write key of the demo user; returns the key."""
    _, key = ApiKey.issue(DEMO_USER, clock.now_ms() if now is None else now,
                          organization_id=DEMO_ORG, name="demo")
    return key


class Generation:
    """One session's way through the lifecycle, one step at a time (`step()`), ending in
    `completed`, or now and then `failed` or `cancelled`."""

    def __init__(self, session_id, product, rng, ttl_seconds):
        self.session_id = session_id
        self.title, self.description, self.kind = product
        self.rng = rng
        self.ttl_seconds = ttl_seconds
        self.components = rng.sample(COMPONENTS, rng.randint(3, 5))
        ending = rng.random()
        self.ending = "failed" if ending < 0.12 else "cancelled" if ending < 0.2 else "completed"
        self.steps = self.script()

    @classmethod
    def start(cls, rng, ttl_seconds, product=None):
        """Create a new session (in `intake`, with its PRD) and its generation."""
        product = product or rng.choice(PRODUCTS)
        title, description, kind = product
        session = Session.start(
            DEMO_USER, DEMO_ORG, clock.now_ms(), ttl_seconds, catalog_version="v2.4.1",
            schema_version="1.0.0",
            prd={"title": title, "description": description, "productType": kind,
                 "audience": rng.choice(["SMB", "enterprise", "consumers", "internal teams"]),
                 "goals": rng.sample(["cut response time", "reduce costs", "grow revenue",
                                      "save staff hours", "improve quality"], 2)})
        generation = cls(session.id, product, rng, ttl_seconds)
        generation.event("info", "Session created from the PRD",
                         {"title": title, "source": "demo"})
        return generation

    # -- writing, through the models as the API does ------------------------------------

    def patch(self, **changes):
        Session.update_live(self.session_id, DEMO_USER, clock.now_ms(), changes)

    def event(self, kind, message, payload=None):
        Session.append_event(self.session_id, DEMO_USER, clock.now_ms(), type=kind,
                             message=message, payload=payload)

    def progress(self, percent, step, done):
        self.patch(assembly_state={"step": step, "progress": percent, "details": {
            "componentsCompleted": done,
            "componentsPending": len(self.components) - done}})

    # -- the script ---------------------------------------------------------------------

    def script(self):
        """The steps, as functions; each writes one moment of the generation."""
        total = len(self.components)
        steps = [
            lambda: self.patch(status="planning"),
            lambda: self.event("info", "Reading the PRD and the catalog",
                               {"catalogVersion": "v2.4.1"}),
            lambda: self.patch(plan={
                "name": f"{self.title} plan", "components": self.components,
                "limits": {"maxRequestsPerMinute": 60, "maxSessions": 1000}}),
            lambda: self.event("info", f"Plan ready: {total} components",
                               {"components": self.components}),
            lambda: self.patch(status="generating"),
            lambda: self.event("info", "Generation started", {"inputParameters": {
                "model": "runtype-v1", "temperature": round(self.rng.uniform(0.2, 0.9), 1)}}),
        ]
        for done, component in enumerate(self.components, start=1):
            steps.append(lambda done=done, component=component: (
                self.event("progress", f"Generated the {component} ({done} of {total})",
                           {"component": component, "done": done, "total": total}),
                self.progress(round(60 * done / total), "generating", done)))
        steps += [
            lambda: self.patch(status="assembling"),
            lambda: self.progress(70, "assembling", total),
            lambda: self.event("progress", "Wiring the components together",
                               {"step": "assembling"}),
            lambda: self.progress(85, "assembling", total),
            lambda: self.patch(product_object={
                "type": self.kind, "name": self.title,
                "config": {"maxTokens": 512, "language": "en"},
                "components": self.components}),
            lambda: self.event("progress", "Product object assembled", None),
            lambda: self.progress(100, "completed", total),
            lambda: self.patch(status="completed"),
        ]
        if self.ending != "completed":
            # Fail or cancel somewhere past planning, instead of going on.
            cut = self.rng.randint(5, len(steps) - 2)
            steps = steps[:cut] + [self.fail if self.ending == "failed" else self.cancel]
        return steps

    def fail(self):
        self.event("error", f"Generating the {self.rng.choice(self.components)} failed: "
                            "the model timed out", {"retryable": True})
        self.patch(status="failed")

    def cancel(self):
        self.event("warning", "Cancelled by the user", None)
        self.patch(status="cancelled")

    @classmethod
    def resume(cls, session, rng, ttl_seconds):
        """The generation of a session a kept demo database left running: it moves on
        through the rest of the lifecycle to completed."""
        prd = session.prd or {}
        product = (prd.get("title", "Product"), prd.get("description", ""),
                   prd.get("productType", "text-generation"))
        generation = cls(session.id, product, rng, ttl_seconds)
        rest = LIFECYCLE[LIFECYCLE.index(session.status) + 1:]
        generation.steps = []
        for status in rest:
            generation.steps += [
                lambda status=status: generation.event("progress", f"Moving on to {status}"),
                lambda status=status: generation.patch(status=status)]
        return generation

    def step(self):
        """Write the next step; False once the generation is over."""
        if not self.steps:
            return False
        self.steps.pop(0)()
        return bool(self.steps)

    def run_to(self, status):
        """Step until the session reaches `status` (seeding)."""
        while self.steps and self.current_status() != status:
            self.step()

    def current_status(self):
        return Session.get_live(self.session_id, DEMO_USER, clock.now_ms()).status


def seed(rng, ttl_seconds):
    """Sessions in every status, with their events (SEEDED_STATUSES); returns the
    generations still running, for the simulator to go on with."""
    running = []
    for product, status in zip(rng.sample(PRODUCTS, len(SEEDED_STATUSES)), SEEDED_STATUSES):
        generation = Generation.start(rng, ttl_seconds, product)
        # The seeded ones end as their status says; those still running go on to completed.
        generation.ending = status if status in TERMINAL_STATUSES else "completed"
        generation.steps = generation.script()
        if status in TERMINAL_STATUSES:
            while generation.step():
                pass
        else:
            generation.run_to(status)
            running.append(generation)
    return running


def has_sessions():
    """Whether the demo user has sessions already (a kept --db file)."""
    return Session.select().where(Session.user_id == DEMO_USER).exists()


def still_running(rng, ttl_seconds):
    """The generations of the demo sessions a kept database left in a running status."""
    now = clock.now_ms()
    sessions = Session.live(DEMO_USER, now).where(Session.status.not_in(TERMINAL_STATUSES))
    return [Generation.resume(session, rng, ttl_seconds) for session in sessions]


class Simulator:
    """Moves the demo's sessions on, one step about every `pace` seconds: it advances a
    running generation, and starts a new session now and then (always when none runs)."""

    def __init__(self, running, pace, ttl_seconds, rng, most_running=6):
        self.running = list(running)
        self.pace = pace
        self.ttl_seconds = ttl_seconds
        self.rng = rng
        self.most_running = most_running

    def tick(self):
        if not self.running or (len(self.running) < self.most_running
                                and self.rng.random() < 0.15):
            self.running.append(Generation.start(self.rng, self.ttl_seconds))
            return
        generation = self.rng.choice(self.running)
        try:
            going_on = generation.step()
        except DomainError:  # someone deleted it, or ended it, through the API meanwhile
            going_on = False
        if not going_on:
            self.running.remove(generation)

    def run(self, stopping, ended=lambda: None):
        """Tick until `stopping` (a threading.Event) is set, or `ended()` gives something
        other than None (the server's exit code)."""
        while not stopping.wait(self.pace * self.rng.uniform(0.6, 1.4)):
            if ended() is not None:
                return
            self.tick()
