"""Request budgets in the index, so that every API process of a deployment spends from one
bucket per key: N processes allow the rate once, not N times."""

from __future__ import annotations

from sqlalchemy import Float, String, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from storage.database.engine import Base, Database


class RateBucketRow(Base):
    """A key's token bucket: `tokens` as of `at` (Unix time), refilled at the configured rate
    up to the burst whenever it is next taken from."""

    __tablename__ = "rate_buckets"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    at: Mapped[float] = mapped_column(Float)


class SharedBuckets:
    """Takes tokens from a key's bucket in the index, by a conditional update (two processes
    never take the same token; one that loses the race reads again).

    Invariant: over any time T a key is granted at most `burst + rate_per_s * T` tokens in all,
    whatever the number of processes taking from its bucket.

    Example:
        >>> buckets = SharedBuckets(Database.connect("sqlite://"), rate_per_s=1.0, burst=3)
        >>> buckets.take("k", wanted=2, now=0.0)
        (2, 0.0)
        >>> buckets.take("k", wanted=2, now=0.0)
        (1, 0.0)
        >>> buckets.take("k", wanted=1, now=0.5)
        (0, 0.5)
    """

    def __init__(self, database: Database, rate_per_s: float, burst: int) -> None:
        self.database = database
        self.rate_per_s = rate_per_s
        self.burst = burst

    def take(self, key_id: str, wanted: int, now: float) -> tuple[int, float]:
        """Up to `wanted` whole tokens of `key_id`'s bucket as of `now` (Unix time): how many
        were taken, and if none, the seconds until one is there."""
        while True:
            with self.database.sessions.begin() as session:
                row = session.get(RateBucketRow, key_id)
                if row is None:
                    try:
                        with session.begin_nested():
                            session.add(RateBucketRow(key_id=key_id, tokens=self.burst, at=now))
                    except IntegrityError:
                        continue  # another process made it first: take from theirs
                    row = session.get(RateBucketRow, key_id)
                    assert row is not None
                old_tokens, old_at = row.tokens, row.at
                elapsed = max(0.0, now - old_at)
                tokens = min(float(self.burst), old_tokens + elapsed * self.rate_per_s)
                taken = min(wanted, int(tokens))
                changed = session.execute(
                    update(RateBucketRow)
                    .where(
                        RateBucketRow.key_id == key_id,
                        RateBucketRow.tokens == old_tokens,
                        RateBucketRow.at == old_at,
                    )
                    .values(tokens=tokens - taken, at=max(now, old_at))
                    .execution_options(synchronize_session=False)
                )
                if changed.rowcount != 1:  # type: ignore[attr-defined]
                    continue  # taken from meanwhile: read again
            wait = 0.0 if taken else (1.0 - tokens) / self.rate_per_s
            return taken, wait
