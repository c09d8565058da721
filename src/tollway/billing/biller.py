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

import msgspec
from msgspec import Struct
from sqlalchemy.exc import IntegrityError

from tollway.auth import Principal
from tollway.billing.periods import period_start_us
from tollway.clock import now_us
from tollway.errors import APIError, InsufficientCredit, SpendLimitExceeded
from tollway.ledger import Draft, Entry, Ledger, LedgerWriter, UsageRecord
from tollway.money import NANOS_PER_USD, format_usd
from tollway.pipeline.context import EndState, RequestContext
from tollway.pipeline.routing import Route
from tollway.pricing import Price, PriceBook, cost_nanos, worst_case_nanos
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


class Settlement(Struct, frozen=True):
    cost_nano: int
    balance_nano: int

    @property
    def cost_usd(self) -> Decimal:
        return Decimal(self.cost_nano) / NANOS_PER_USD


def _rates(price: Price) -> str:
    return msgspec.json.encode(
        {
            "price_id": price.id,
            "input": str(price.input),
            "cached_input": str(price.cached_input),
            "cache_write": str(price.cache_write),
            "cache_write_1h": str(price.cache_write_1h),
            "output": str(price.output),
            "reasoning": str(price.reasoning),
            "request": str(price.request),
        }
    ).decode()


class Biller:
    def __init__(self, ledger: Ledger, prices: PriceBook, counter: TokenCounter, owner: str) -> None:
        self._ledger = ledger
        self._prices = prices
        self._counter = counter
        self.owner = owner
        self._background: set[asyncio.Future[None]] = set()

    def price(self, model: str) -> Price:
        price = self._prices.current(model, now_us())
        if price is None:  # start-up refuses unpriced models; this is a broken invariant
            raise APIError(f"No price is in force for '{model}'.", code="price_missing")
        return price

    async def reserve(self, principal: Principal, route: Route, call: Call, request_id: str) -> Hold:
        price = self.price(route.model.name)
        output = call.output_bound(route.model.max_output_tokens)
        prompt = call.prompt_bound()
        try:
            return await self._reserve(principal, price, request_id, prompt, output)
        except (InsufficientCredit, SpendLimitExceeded):
            if route.estimated:
                raise
            # The byte bound is loose; the exact count may still fit.
            tight = await call.tight_prompt_bound(self._counter, route.encoding)
            if tight >= prompt:
                raise
            return await self._reserve(principal, price, request_id, tight, output)

    async def _reserve(
        self, principal: Principal, price: Price, request_id: str, prompt: int, output: int
    ) -> Hold:
        hold = worst_case_nanos(price, prompt, output)

        async def check_and_reserve(writer: LedgerWriter) -> None:
            head = await writer.head()
            if hold > head.available_nano:
                raise InsufficientCredit(
                    f"Insufficient credit: this request needs ${format_usd(hold)} reserved (its worst case: "
                    f"{prompt} prompt + {output} output tokens at {price.model}'s rates); "
                    f"available ${format_usd(max(head.available_nano, 0))}."
                )
            if principal.spend_limit_nano is not None:
                key = await writer.key_head(principal.key_id)
                spent = key.spent_nano
                since = period_start_us(principal.spend_limit_period, now_us())
                if since is not None:
                    spent -= await writer.key_spent_before(principal.key_id, since)
                if spent + key.held_nano + hold > principal.spend_limit_nano:
                    period = principal.spend_limit_period
                    raise SpendLimitExceeded(
                        f"This key's spend limit of ${format_usd(principal.spend_limit_nano)} "
                        f"{'in total' if period == 'total' else 'per ' + period} is reached: "
                        f"spent ${format_usd(spent)}, reserved ${format_usd(key.held_nano)}, "
                        f"this request needs ${format_usd(hold)}."
                    )
            await writer.append(
                Draft(
                    workspace_id=principal.workspace_id,
                    kind="reserve",
                    hold_nano=hold,
                    key_id=principal.key_id,
                    reservation_id=request_id,
                    owner=self.owner,
                )
            )

        held = Hold(request_id, principal.workspace_id, principal.key_id, hold, price)
        # Not durable on its own: a reservation lost with the machine guarded a request that died too.
        # If the caller is gone before it lands, it is released as soon as it does.
        await self._ledger.transact(
            principal.workspace_id,
            check_and_reserve,
            durable=False,
            abandoned=lambda _: self._release_later(held),
        )
        return held

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
        record = UsageRecord(
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
            rates=_rates(hold.price),
            cost_nano=cost,
            started_at=ctx.started_us,
            finished_at=now_us(),
            cache_write_1h_tokens=usage.cache_write_1h,
        )

        async def debit(writer: LedgerWriter) -> Entry:
            await writer.record_usage(record)
            return await writer.append(
                Draft(
                    workspace_id=hold.workspace_id,
                    kind="debit",
                    amount_nano=-cost,
                    hold_nano=-hold.hold_nano,
                    key_id=hold.key_id,
                    reservation_id=hold.request_id,
                )
            )

        try:
            entry = await self._ledger.transact(hold.workspace_id, debit)
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
        try:
            await self._ledger.transact(hold.workspace_id, lambda writer: writer.append(draft))
        except IntegrityError:
            log.warning("reservation %s was already closed", hold.request_id)
