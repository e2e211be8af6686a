"""gongji.binding.v1.BindingService over gRPC: convert, run the use case, convert back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from gongji.binding.v1 import binding_service_pb2 as api
from gongji.binding.v1 import binding_service_pb2_grpc as api_grpc
from services.binding.entrypoints import converters as convert
from services.binding.entrypoints.payer_watch import PayerChangeHub
from services.binding.service_layer import use_cases
from services.binding.service_layer.policy_book import PolicyBook
from services.binding.service_layer.unit_of_work import BindingUnitOfWork
from services.common.clock import Clock
from services.common.converters import page_size, required_id, text_field, timestamp_to_datetime
from services.common.paging import decode_offset, decode_time_and_id, encode_page_token, fitting
from services.common.runner import UseCaseRunner
from services.common.security.callers import current_caller
from shared.bindings import Actor
from shared.errors import DomainError, Reason
from shared.identity import validate_id_number
from shared.persons import validate_phone
from shared.principals import PrincipalKind
from shared.regions import validate_admdvs

SERVICE = "gongji.binding.v1.BindingService"


def _method(name: str) -> str:
    return f"/{SERVICE}/{name}"


def _changed_by(request_id: str) -> use_cases.Who:
    """Who makes a grantor's change, from the caller's certificate: an operator by his id, else
    the grantor (named by the use case) through the calling channel, if a channel calls."""
    caller = current_caller()
    principal = caller.principal if caller is not None else None
    if principal is not None and principal.kind is PrincipalKind.OPERATOR:
        return use_cases.Who(Actor.OPERATOR, principal.operator_id, None, request_id)
    channel = principal.channel if principal is not None and principal.kind is PrincipalKind.CHANNEL else None
    return use_cases.Who(Actor.GRANTOR, "", channel, request_id)


class BindingServicer(api_grpc.BindingServiceServicer):
    def __init__(
        self,
        runner: UseCaseRunner[BindingUnitOfWork],
        clock: Clock,
        policy_book: PolicyBook,
        payer_changes: PayerChangeHub | None = None,
    ) -> None:
        self._run = runner
        self._clock = clock
        self._policies = policy_book
        self._payer_changes = payer_changes

    # Registry -----------------------------------------------------------------

    async def UpsertInsuredPerson(
        self, request: api.UpsertInsuredPersonRequest, context: grpc.aio.ServicerContext
    ) -> api.UpsertInsuredPersonResponse:
        person = convert.person_from_proto(request.insured_person)

        def run(uow: BindingUnitOfWork) -> api.UpsertInsuredPersonResponse:
            saved, created, _ = use_cases.upsert_person(uow, person, self._clock.now(), request.request_id)
            return api.UpsertInsuredPersonResponse(insured_person=convert.person_to_proto(saved), created=created)

        return await self._run.mutate(
            _method("UpsertInsuredPerson"), request.request_id, request, api.UpsertInsuredPersonResponse, run
        )

    async def GetInsuredPerson(
        self, request: api.GetInsuredPersonRequest, context: grpc.aio.ServicerContext
    ) -> api.GetInsuredPersonResponse:
        id_number = validate_id_number(request.id_number)
        person = await self._run.query(lambda uow: use_cases.get_person(uow, id_number))
        return api.GetInsuredPersonResponse(insured_person=convert.person_to_proto(person))

    async def UpdateContactInfo(
        self, request: api.UpdateContactInfoRequest, context: grpc.aio.ServicerContext
    ) -> api.UpdateContactInfoResponse:
        id_number = validate_id_number(request.id_number)
        phone = validate_phone(text_field(request.phone, "phone", 32))
        address = text_field(request.address, "address", 256)

        def run(uow: BindingUnitOfWork) -> api.UpdateContactInfoResponse:
            person = use_cases.update_contact_info(uow, id_number, phone, address, self._clock.now())
            return api.UpdateContactInfoResponse(insured_person=convert.person_to_proto(person))

        return await self._run.mutate(
            _method("UpdateContactInfo"), request.request_id, request, api.UpdateContactInfoResponse, run
        )

    async def ReportLifeEvent(
        self, request: api.ReportLifeEventRequest, context: grpc.aio.ServicerContext
    ) -> api.ReportLifeEventResponse:
        id_number = validate_id_number(request.id_number)
        event = convert.life_event_from_proto(request.event_type)
        other = validate_id_number(request.other_id_number, "other_id_number") if request.other_id_number else ""

        def run(uow: BindingUnitOfWork) -> api.ReportLifeEventResponse:
            now = self._clock.now()
            event_time = timestamp_to_datetime(request, "event_time") or now
            person, changes = use_cases.report_life_event(
                uow, id_number, event, other, event_time, now, request.request_id
            )
            return api.ReportLifeEventResponse(
                ended_bindings=[convert.binding_to_proto(b) for b in changes.ended],
                suspended_bindings=[convert.binding_to_proto(b) for b in changes.suspended],
                insured_person=convert.person_to_proto(person),
            )

        return await self._run.mutate(
            _method("ReportLifeEvent"), request.request_id, request, api.ReportLifeEventResponse, run
        )

    # Bindings -----------------------------------------------------------------

    async def CreateBinding(
        self, request: api.CreateBindingRequest, context: grpc.aio.ServicerContext
    ) -> api.CreateBindingResponse:
        application = convert.application_from_request(request)

        def run(uow: BindingUnitOfWork) -> api.CreateBindingResponse:
            now = self._clock.now()
            consent_time = timestamp_to_datetime(request, "consent_time") or now
            binding = use_cases.create_binding(
                uow, application, self._policies.snapshot(uow), consent_time, now, request.request_id
            )
            return api.CreateBindingResponse(binding=convert.binding_to_proto(binding))

        return await self._run.mutate(
            _method("CreateBinding"), request.request_id, request, api.CreateBindingResponse, run
        )

    async def ReviewBinding(
        self, request: api.ReviewBindingRequest, context: grpc.aio.ServicerContext
    ) -> api.ReviewBindingResponse:
        if request.decision == api.REVIEW_DECISION_UNSPECIFIED:
            raise DomainError(Reason.FIELD_REQUIRED, "decision must be APPROVE or REJECT", field="decision")
        if request.decision not in (api.REVIEW_DECISION_APPROVE, api.REVIEW_DECISION_REJECT):
            raise DomainError(Reason.FIELD_INVALID, "decision must be APPROVE or REJECT", field="decision")
        approve = request.decision == api.REVIEW_DECISION_APPROVE
        binding_id = required_id(request.binding_id, "binding_id")
        operator_id = text_field(request.operator_id, "operator_id", 64)
        comment = text_field(request.comment, "comment", 1000)

        def run(uow: BindingUnitOfWork) -> api.ReviewBindingResponse:
            binding = use_cases.review_binding(
                uow,
                binding_id,
                approve,
                operator_id,
                comment,
                self._policies.snapshot(uow),
                self._clock.now(),
                request.request_id,
            )
            return api.ReviewBindingResponse(binding=convert.binding_to_proto(binding))

        return await self._run.mutate(
            _method("ReviewBinding"), request.request_id, request, api.ReviewBindingResponse, run
        )

    async def EndBinding(
        self, request: api.EndBindingRequest, context: grpc.aio.ServicerContext
    ) -> api.EndBindingResponse:
        binding_id = required_id(request.binding_id, "binding_id")
        actor = convert.actor_from_proto(request.actor)
        if actor is Actor.SYSTEM:
            raise DomainError(Reason.FIELD_INVALID, "actor must be GRANTOR, BENEFICIARY or OPERATOR", field="actor")
        channel = convert.optional_channel(request.channel)
        actor_id = text_field(request.actor_id, "actor_id", 64)
        if actor in (Actor.GRANTOR, Actor.BENEFICIARY):
            if not actor_id:
                # A grantor or beneficiary names himself by ID number; one who names nobody sent too
                # little, he is not shown to be no party (NOT_PARTY_TO_BINDING). FIELD_INVALID, not
                # FIELD_REQUIRED: actor_id is unmarked, as an operator may leave it to his certificate.
                # Refused before the transaction, so nothing is stored under the key: the caller
                # may send the same request_id again with actor_id.
                raise DomainError(
                    Reason.FIELD_INVALID,
                    f"actor_id is needed when the actor is the {actor.value.lower()}: "
                    f"send the {actor.value.lower()}'s ID number",
                    field="actor_id",
                )
            actor_id = validate_id_number(actor_id, "actor_id")  # the party's ID number, a small x made X
        comment = text_field(request.comment, "comment", 1000)

        def run(uow: BindingUnitOfWork) -> api.EndBindingResponse:
            who = use_cases.Who(actor, actor_id, channel, request.request_id)
            binding = use_cases.end_binding(
                uow, binding_id, who, comment, self._policies.snapshot(uow), self._clock.now()
            )
            return api.EndBindingResponse(binding=convert.binding_to_proto(binding))

        return await self._run.mutate(_method("EndBinding"), request.request_id, request, api.EndBindingResponse, run)

    async def GetBinding(
        self, request: api.GetBindingRequest, context: grpc.aio.ServicerContext
    ) -> api.GetBindingResponse:
        binding_id = required_id(request.binding_id, "binding_id")
        binding = await self._run.query(lambda uow: use_cases.get_binding(uow, binding_id))
        return api.GetBindingResponse(binding=convert.binding_to_proto(binding))

    async def ListBindings(
        self, request: api.ListBindingsRequest, context: grpc.aio.ServicerContext
    ) -> api.ListBindingsResponse:
        if not request.grantor_id_number and not request.beneficiary_id_number:
            raise DomainError(
                Reason.FIELD_REQUIRED,
                "give exactly one of grantor_id_number and beneficiary_id_number",
                field="grantor_id_number",
            )
        if request.grantor_id_number and request.beneficiary_id_number:
            raise DomainError(
                Reason.FIELD_INVALID,
                "grantor_id_number and beneficiary_id_number exclude each other: give one of them",
                field="beneficiary_id_number",
            )
        grantor = (
            validate_id_number(request.grantor_id_number, "grantor_id_number") if request.grantor_id_number else ""
        )
        beneficiary = (
            validate_id_number(request.beneficiary_id_number, "beneficiary_id_number")
            if request.beneficiary_id_number
            else ""
        )
        states = convert.states_from_proto(list(request.states))
        limit = page_size(request.page_size)
        query = [grantor, beneficiary, sorted(s.value for s in states)]
        after = decode_time_and_id(request.page_token, query)
        found = await self._run.query(
            lambda uow: use_cases.list_bindings(uow, grantor, beneficiary, states, after, limit + 1)
        )
        page, more = found[:limit], len(found) > limit
        bindings = [convert.binding_to_proto(b) for b in page]
        if (fit := fitting(bindings)) < len(bindings):
            page, bindings, more = page[:fit], bindings[:fit], True
        token = encode_page_token(query, [page[-1].create_time.isoformat(), page[-1].binding_id]) if more else ""
        return api.ListBindingsResponse(bindings=bindings, next_page_token=token)

    async def ListBindingEvents(
        self, request: api.ListBindingEventsRequest, context: grpc.aio.ServicerContext
    ) -> api.ListBindingEventsResponse:
        binding_id = required_id(request.binding_id, "binding_id")
        limit = page_size(request.page_size)
        after = decode_offset(request.page_token, [binding_id]) or 0

        def read(uow: BindingUnitOfWork) -> list:
            use_cases.get_binding(uow, binding_id)
            return uow.events.page(binding_id, after, limit + 1)

        found = await self._run.query(read)
        page, more = found[:limit], len(found) > limit
        events = [convert.event_to_proto(event) for _, event in page]
        if (fit := fitting(events)) < len(events):
            page, events, more = page[:fit], events[:fit], True
        token = encode_page_token([binding_id], page[-1][0]) if more else ""
        return api.ListBindingEventsResponse(events=events, next_page_token=token)

    async def UpdateSharingLimit(
        self, request: api.UpdateSharingLimitRequest, context: grpc.aio.ServicerContext
    ) -> api.UpdateSharingLimitResponse:
        binding_id = required_id(request.binding_id, "binding_id")
        who = _changed_by(request.request_id)

        def run(uow: BindingUnitOfWork) -> api.UpdateSharingLimitResponse:
            binding = use_cases.update_sharing_limit(
                uow, binding_id, request.share_all, request.yearly_cap_fen, self._clock.now(), who
            )
            return api.UpdateSharingLimitResponse(binding=convert.binding_to_proto(binding))

        return await self._run.mutate(
            _method("UpdateSharingLimit"), request.request_id, request, api.UpdateSharingLimitResponse, run
        )

    async def SetPayerOrder(
        self, request: api.SetPayerOrderRequest, context: grpc.aio.ServicerContext
    ) -> api.SetPayerOrderResponse:
        beneficiary = validate_id_number(request.beneficiary_id_number, "beneficiary_id_number")
        mode = convert.payer_mode_from_proto(request.mode)
        binding_ids = [required_id(value, f"binding_ids[{index}]") for index, value in enumerate(request.binding_ids)]

        def run(uow: BindingUnitOfWork) -> api.SetPayerOrderResponse:
            order = use_cases.set_payer_order(uow, beneficiary, binding_ids, mode, self._clock.now())
            return convert.payer_order_to_proto(order)

        return await self._run.mutate(
            _method("SetPayerOrder"), request.request_id, request, api.SetPayerOrderResponse, run
        )

    async def ResolvePayers(
        self, request: api.ResolvePayersRequest, context: grpc.aio.ServicerContext
    ) -> api.ResolvePayersResponse:
        beneficiary = validate_id_number(request.beneficiary_id_number, "beneficiary_id_number")
        use = convert.use_from_proto(request.use_category)
        if request.institution_admdvs:
            validate_admdvs(request.institution_admdvs, "institution_admdvs")
        at = timestamp_to_datetime(request, "at_time") or self._clock.now()
        resolution = await self._run.query(
            lambda uow: use_cases.resolve(
                uow, beneficiary, use, request.chronic_disease, at, self._policies.snapshot(uow)
            ),
            # Reads that need no common snapshot: the candidates, and (where the region earmarks)
            # the patient's own bindings as a grantor; the policies are a cached snapshot.
            snapshot=False,
        )
        return convert.resolution_to_proto(resolution)

    async def CheckWalletTransfer(
        self, request: api.CheckWalletTransferRequest, context: grpc.aio.ServicerContext
    ) -> api.CheckWalletTransferResponse:
        grantor = validate_id_number(request.grantor_id_number, "grantor_id_number")
        beneficiary = validate_id_number(request.beneficiary_id_number, "beneficiary_id_number")
        at = self._clock.now()
        binding, found_grantor, found_beneficiary = await self._run.query(
            lambda uow: use_cases.check_wallet_transfer(uow, grantor, beneficiary, at, self._policies.snapshot(uow))
        )
        return api.CheckWalletTransferResponse(
            binding_id=binding.binding_id,
            grantor_admdvs=found_grantor.admdvs,
            beneficiary_admdvs=found_beneficiary.admdvs,
        )

    async def WatchPayerChanges(
        self, request_iterator: AsyncIterator[api.WatchPayerChangesRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[api.WatchPayerChangesResponse]:
        if self._payer_changes is None:
            raise DomainError(
                Reason.PAYER_WATCH_OFF,
                "this binding service announces no payer changes; ask ResolvePayers for every bill",
            )
        async for message in self._payer_changes.watch(request_iterator):
            yield message

    # Regional policy ------------------------------------------------------------

    async def PutRegionPolicy(
        self, request: api.PutRegionPolicyRequest, context: grpc.aio.ServicerContext
    ) -> api.PutRegionPolicyResponse:
        if not request.HasField("policy"):
            raise DomainError(Reason.FIELD_REQUIRED, "policy is required", field="policy")
        policy = convert.policy_from_proto(request.policy)
        added: list[bool] = []

        def run(uow: BindingUnitOfWork) -> api.PutRegionPolicyResponse:
            stored, created = use_cases.put_policy(uow, policy, self._clock.now())
            added.append(created)
            return api.PutRegionPolicyResponse(policy=convert.policy_to_proto(stored))

        def drop_cached_policies() -> None:
            # On the work's thread once it committed: before the change is announced to the payment
            # nodes (which ask again at once), and also when the caller gave up before the commit.
            if any(added):  # a replay, or a version stored before, leaves the cache as it is
                self._policies.invalidate()

        return await self._run.mutate(
            _method("PutRegionPolicy"), request.request_id, request, api.PutRegionPolicyResponse, run,
            after_commit=drop_cached_policies,
        )  # fmt: skip

    async def GetRegionPolicy(
        self, request: api.GetRegionPolicyRequest, context: grpc.aio.ServicerContext
    ) -> api.GetRegionPolicyResponse:
        admdvs = validate_admdvs(request.admdvs, "admdvs", allow_national=True)
        at = timestamp_to_datetime(request, "at_time") or self._clock.now()
        policy = await self._run.query(lambda uow: self._policies.snapshot(uow).for_region(admdvs, at))
        return convert.policy_in_force_to_proto(admdvs, policy)

    async def ListRegionPolicies(
        self, request: api.ListRegionPoliciesRequest, context: grpc.aio.ServicerContext
    ) -> api.ListRegionPoliciesResponse:
        prefix = request.admdvs.strip()
        if prefix and (not prefix.isascii() or not prefix.isdigit() or len(prefix) > 6):
            raise DomainError(Reason.INVALID_ADMDVS, "admdvs filter must be up to 6 digits", field="admdvs")
        limit = page_size(request.page_size)
        # The token holds the last policy's key, not a count, so a policy put between two pages
        # neither repeats nor hides another.
        after = decode_time_and_id(request.page_token, [prefix, "key"])
        policies = await self._run.query(lambda uow: use_cases.list_policies(uow, prefix))
        if after is not None:
            policies = [p for p in policies if (p.admdvs, p.effective_from) > (after[1], after[0])]
        page = policies[:limit]
        last = page[-1] if page else None
        return api.ListRegionPoliciesResponse(
            policies=[convert.policy_to_proto(p) for p in page],
            next_page_token=(
                encode_page_token([prefix, "key"], [last.effective_from.isoformat(), last.admdvs])
                if last is not None and len(policies) > limit
                else ""
            ),
        )
