"""Reserve before forwarding, settle or release after: the money side of one request.

Check-and-reserve happens inside the workspace's write lock, so concurrent
requests cannot spend the same credit twice: the available balance (balance
minus open reservations) must cover the request's worst case, and a key's
spend plus its open reservations must stay within its ceiling.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

from msgspec import Struct
from sqlalchemy.exc import IntegrityError

from tollway.auth import Principal
from tollway.billing import alerts
from tollway.billing.periods import period_start_us
from tollway.clock import now_us
from tollway.errors import (
    APIError,
    AuthenticationFailed,
    InsufficientCredit,
    RateLimitExceeded,
    SpendLimitExceeded,
)
from tollway.events import Outbox
from tollway.ledger import Draft, Entry, Ledger, LedgerWriter, UsageRecord
from tollway.limits import Admission, Ticket, admit, close_admission, read_config, record
from tollway.money import NANOS_PER_USD, format_usd
from tollway.pipeline.context import EndState, RequestContext
from tollway.pipeline.routing import Route
from tollway.pricing import Price, PriceBook, cost_nanos, rates_text, worst_case_nanos
from tollway.surfaces.base import Call
from tollway.tokens import TokenCounter
from tollway.usage import Usage

__all__ = ["Biller", "Hold", "Settlement"]

log = logging.getLogger("tollway.billing")


class Hold(Struct, frozen=True):
    """An open reservation: exactly one `settle` or `release` closes it."""

    request_id: str
    workspace_id: str
    key_id: str
    hold_nano: int
    price: Price
    # A rate limit was in force: what the admission counted, adjusted by the settlement.
    ticket: Ticket | None = None
    # The workspace's low-balance threshold as read at reservation (the settlement's first test).
    low_balance_nano: int | None = None
    # How the rate limits admitted it: the response's `x-ratelimit-*` headers.
    admission: Admission | None = None

    @property
    def rate_headers(self) -> dict[str, str]:
        return {} if self.admission is None else self.admission.headers()


class Settlement(Struct, frozen=True):
    cost_nano: int
    balance_nano: int

    @property
    def cost_usd(self) -> Decimal:
        return Decimal(self.cost_nano) / NANOS_PER_USD


class Biller:
    def __init__(
        self,
        ledger: Ledger,
        prices: PriceBook,
        counter: TokenCounter,
        owner: str,
        outbox: Outbox | None = None,
    ) -> None:
        self._ledger = ledger
        self._prices = prices
        self._counter = counter
        self.owner = owner
        self._outbox = outbox or Outbox()
        self._background: set[asyncio.Future[None]] = set()

    def price(self, model: str) -> Price:
        price = self._prices.current(model, now_us())
        if price is None:  # start-up refuses unpriced models; this is a broken invariant
            raise APIError(f"No price is in force for '{model}'.", code="price_missing")
        return price

    async def reserve(self, principal: Principal, route: Route, call: Call, request_id: str) -> Hold:
        """Check rate limits, credit and the key's spend limit, and reserve the worst case, atomically."""
        price = self.price(route.model.name)
        output = call.output_bound(route.model.max_output_tokens)
        prompt = call.prompt_bound()
        try:
            return await self._reserve(principal, price, request_id, prompt, output, final=route.estimated)
        except (InsufficientCredit, SpendLimitExceeded, RateLimitExceeded) as refused:
            if route.estimated:
                raise
            # The byte bound is loose; the exact count may still fit.  Money refusals are always
            # judged once more (the final judgement is the one that sends its event).
            tight = min(await call.tight_prompt_bound(self._counter, route.encoding), prompt)
            if isinstance(refused, RateLimitExceeded) and (refused.type != "tokens" or tight >= prompt):
                raise
            return await self._reserve(principal, price, request_id, tight, output, final=True)

    async def _reserve(
        self, principal: Principal, price: Price, request_id: str, prompt: int, output: int, *, final: bool
    ) -> Hold:
        hold = worst_case_nanos(price, prompt, output)
        tokens = prompt + output
        workspace_id, key_id = principal.workspace_id, principal.key_id

        async def check_and_reserve(writer: LedgerWriter) -> Hold | APIError:
            now = now_us()
            # Read under the workspace's lock: a PATCH or a revocation made by any process counts at once.
            config = await read_config(writer.sql, key_id, workspace_id, now)
            if config is None or config.revoked:
                raise AuthenticationFailed("Invalid API key: it is unknown or has been revoked.")
            admission = (
                await admit(writer.sql, config, workspace_id, key_id, tokens, now) if config.rated else None
            )
            head = await writer.head(key_id)  # the key's head comes with it, for the append below
            if hold > head.available_nano:
                error: APIError = InsufficientCredit(
                    f"Insufficient credit: this request needs ${format_usd(hold)} reserved (its worst case: "
                    f"{prompt} prompt + {output} output tokens at {price.model}'s rates); "
                    f"available ${format_usd(max(head.available_nano, 0))}."
                )
                if not (final and not config.exhausted_notified):
                    raise error
                await alerts.exhausted(
                    writer.sql, self._outbox, workspace_id, key_id, request_id, hold, head.available_nano
                )
                return error  # committed: the event, not a reservation
            limit = config.spend_limit_nano
            if limit is not None:
                key = await writer.key_head(key_id)
                spent = key.spent_nano
                since = period_start_us(config.spend_limit_period, now)
                if since is not None:
                    spent -= await writer.key_spent_before(key_id, since)
                if spent + key.held_nano + hold > limit:
                    period = config.spend_limit_period
                    error = SpendLimitExceeded(
                        f"This key's spend limit of ${format_usd(limit)} "
                        f"{'in total' if period == 'total' else 'per ' + period} is reached: "
                        f"spent ${format_usd(spent)}, reserved ${format_usd(key.held_nano)}, "
                        f"this request needs ${format_usd(hold)}."
                    )
                    mark = -1 if since is None else since
                    if not final or config.spend_notified_period == mark:
                        raise error
                    await alerts.spend_limit_reached(
                        writer.sql,
                        self._outbox,
                        workspace_id=workspace_id,
                        key_id=key_id,
                        request_id=request_id,
                        limit=limit,
                        period=period,
                        period_mark=mark,
                        spent=spent,
                    )
                    return error
            await writer.append(
                Draft(
                    workspace_id=workspace_id,
                    kind="reserve",
                    hold_nano=hold,
                    key_id=key_id,
                    reservation_id=request_id,
                    owner=self.owner,
                )
            )
            if admission is not None:
                await record(writer.sql, admission.ticket, request_id, workspace_id, key_id, now)
            return Hold(
                request_id,
                workspace_id,
                key_id,
                hold,
                price,
                ticket=admission.ticket if admission is not None else None,
                low_balance_nano=config.low_balance_nano,
                admission=admission,
            )

        # Not durable on its own: a reservation lost with the machine guarded a request that died too.
        # If the caller is gone before it lands, it is released as soon as it does.
        result = await self._ledger.transact(
            workspace_id,
            check_and_reserve,
            durable=False,
            abandoned=lambda landed: self._release_later(landed) if isinstance(landed, Hold) else None,
            operation="reserve",
            key_id=key_id,
        )
        if isinstance(result, APIError):
            raise result
        return result

    def _release_later(self, hold: Hold) -> None:
        task = asyncio.ensure_future(self.release(hold, note="request cancelled while reserving"))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle(self, hold: Hold, ctx: RequestContext, state: EndState, usage: Usage) -> Settlement:
        """Debit the actual cost and close the reservation, with the usage record, in one transaction."""
        cost = cost_nanos(
            hold.price,
            usage.prompt,
            usage.completion,
            usage.cached,
            usage.cache_write,
            usage.reasoning,
            cache_write_1h=usage.cache_write_1h,
        )
        usage_record = UsageRecord(
            id=hold.request_id,
            workspace_id=hold.workspace_id,
            key_id=hold.key_id,
            model=ctx.route.model.name,
            upstream=ctx.upstream.name,
            price_id=hold.price.id,
            stream=ctx.call.stream,
            end_state=state,
            prompt_tokens=usage.prompt,
            completion_tokens=usage.completion,
            cached_tokens=usage.cached,
            cache_write_tokens=usage.cache_write,
            reasoning_tokens=usage.reasoning,
            prompt_source=usage.prompt_source,
            completion_source=usage.completion_source,
            estimated=usage.estimated,
            report_invalid=usage.report_invalid,
            upstream_model=(ctx.upstream_model or ctx.route.model.target)[:200],
            operation_type=ctx.surface.operation,
            rates=rates_text(hold.price),
            cost_nano=cost,
            started_at=ctx.started_us,
            finished_at=now_us(),
            cache_write_1h_tokens=usage.cache_write_1h,
        )

        async def debit(writer: LedgerWriter) -> Entry:
            entry = await writer.append_with_usage(
                usage_record,
                Draft(
                    workspace_id=hold.workspace_id,
                    kind="debit",
                    amount_nano=-cost,
                    hold_nano=-hold.hold_nano,
                    key_id=hold.key_id,
                    reservation_id=hold.request_id,
                ),
            )
            if hold.ticket is not None:
                await close_admission(writer.sql, hold.ticket, hold.request_id, usage.total)
            await alerts.after_debit(writer.sql, self._outbox, entry, hold.low_balance_nano, hold.request_id)
            return entry

        try:
            entry = await self._ledger.transact(
                hold.workspace_id, debit, operation="settle", key_id=hold.key_id
            )
        except IntegrityError:
            # Only possible if the reservation was already closed (released as an orphan).
            log.error("reservation %s was already closed; request not billed", hold.request_id)
            balance = await self._ledger.balance(hold.workspace_id)
            return Settlement(0, balance.balance_nano)
        return Settlement(cost, entry.balance_nano)

    async def release(self, hold: Hold, note: str | None = None) -> None:
        """Close the reservation at no cost (the request failed or was refused)."""
        draft = Draft(
            workspace_id=hold.workspace_id,
            kind="release",
            hold_nano=-hold.hold_nano,
            key_id=hold.key_id,
            reservation_id=hold.request_id,
            note=note,
        )

        async def close(writer: LedgerWriter) -> None:
            await writer.append(draft)
            if hold.ticket is not None:
                await close_admission(writer.sql, hold.ticket, hold.request_id, 0)

        try:
            await self._ledger.transact(hold.workspace_id, close, operation="release", key_id=hold.key_id)
        except IntegrityError:
            log.warning("reservation %s was already closed", hold.request_id)
