"""Admin commands, and the Fabrics commands of a connected admin queue, as handlers.

Each handler takes the controller, the decoded command and the time, and returns a
`Reply` (or None for an Asynchronous Event Request that is held). Handlers are found
through tables by opcode, CNS, log page and feature; a discovery controller has
smaller tables than an I/O controller. Nothing here touches a socket or a device;
a shutdown's flush is asked for through `Reply.then`.
"""

from __future__ import annotations

from collections.abc import Callable

from mayastor.nvmf.spec import (
    NSID_ALL,
    AdminOpcode,
    Cns,
    Command,
    FabricsCommandType,
    FeatureId,
    FeatureSelect,
    GetFeatures,
    GetLogPage,
    Identify,
    KeepAliveTimer,
    LogPageId,
    NumberOfQueues,
    PropertyGet,
    PropertySet,
    SetFeatures,
    SpecError,
    VolatileWriteCache,
    encode_namespace_list,
    log_page_window,
)
from mayastor.target._controller import Controller, PropertyError
from mayastor.target._identify import (
    ZEROES,
    ana_log,
    changed_namespace_log,
    discovery_log,
    error_log,
    identify_controller,
    identify_namespace,
    namespace_descriptors,
    smart_log,
)
from mayastor.target._reply import (
    AER_LIMIT_EXCEEDED,
    COMMAND_SEQUENCE_ERROR,
    FEATURE_NOT_SAVEABLE,
    INVALID_FIELD,
    INVALID_LOG_PAGE,
    INVALID_NAMESPACE,
    INVALID_OPCODE,
    OK,
    SGL_LENGTH_INVALID,
    Reply,
    failed,
)
from mayastor.target._subsystem import NSID
from mayastor.target._table import TransitionError

Handler = Callable[[Controller, Command, float], Reply | None]

NVM_COMMAND_SET = 0
"""CSI of the NVM command set."""
_CHANGEABLE = 1 << 2
"""Get Features SEL 11b answer: the feature is changeable (not saveable, not per NS)."""


# ------------------------------------------------------------------ Identify


def _identify_namespace(ctrl: Controller, cmd: Command, ident: Identify) -> Reply:
    if cmd.nsid != NSID:
        return failed(INVALID_NAMESPACE)
    return Reply(data=identify_namespace(ctrl.subsystem))


def _identify_controller(ctrl: Controller, cmd: Command, ident: Identify) -> Reply:
    return Reply(data=identify_controller(ctrl))


def _active_namespaces(ctrl: Controller, cmd: Command, ident: Identify) -> Reply:
    if cmd.nsid >= 0xFFFF_FFFE:
        return failed(INVALID_NAMESPACE)
    return Reply(data=encode_namespace_list([NSID], greater_than=cmd.nsid))


def _namespace_descriptors(ctrl: Controller, cmd: Command, ident: Identify) -> Reply:
    if cmd.nsid != NSID:
        return failed(INVALID_NAMESPACE)
    return Reply(data=namespace_descriptors(ctrl.subsystem))


def _command_set_controller(ctrl: Controller, cmd: Command, ident: Identify) -> Reply:
    if ident.csi != NVM_COMMAND_SET:
        return failed(INVALID_FIELD)
    return Reply(data=ZEROES)


IdentifyHandler = Callable[[Controller, Command, Identify], Reply]

_IDENTIFY_IO: dict[int, IdentifyHandler] = {
    Cns.NAMESPACE: _identify_namespace,
    Cns.CONTROLLER: _identify_controller,
    Cns.ACTIVE_NAMESPACES: _active_namespaces,
    Cns.NAMESPACE_ID_DESCRIPTORS: _namespace_descriptors,
    Cns.IO_COMMAND_SET_CONTROLLER: _command_set_controller,
}
_IDENTIFY_DISCOVERY: dict[int, IdentifyHandler] = {Cns.CONTROLLER: _identify_controller}


def _identify(ctrl: Controller, cmd: Command, now: float) -> Reply:
    ident = Identify.from_command(cmd)
    table = _IDENTIFY_DISCOVERY if ctrl.is_discovery else _IDENTIFY_IO
    handler = table.get(ident.cns)
    if handler is None:
        return failed(INVALID_FIELD)
    return handler(ctrl, cmd, ident)


# ------------------------------------------------------------------ Get Log Page

LogBuilder = Callable[[Controller, GetLogPage], bytes]

_LOGS_IO: dict[int, LogBuilder] = {
    LogPageId.ERROR_INFORMATION: lambda ctrl, req: error_log(ctrl),
    LogPageId.SMART_HEALTH: lambda ctrl, req: smart_log(ctrl.subsystem),
    LogPageId.CHANGED_NAMESPACES: lambda ctrl, req: changed_namespace_log(ctrl),
    LogPageId.ANA: lambda ctrl, req: ana_log(ctrl.subsystem, groups_only=bool(req.lsp & 1)),
}
_LOGS_DISCOVERY: dict[int, LogBuilder] = {
    LogPageId.DISCOVERY: lambda ctrl, req: discovery_log(ctrl.registry, ctrl.hostnqn),
}


def _get_log_page(ctrl: Controller, cmd: Command, now: float) -> Reply:
    req = GetLogPage.from_command(cmd)
    builder = (_LOGS_DISCOVERY if ctrl.is_discovery else _LOGS_IO).get(req.lid)
    if builder is None:
        return failed(INVALID_LOG_PAGE)
    if cmd.nsid not in (0, NSID, NSID_ALL):
        return failed(INVALID_NAMESPACE)
    if req.length > ctrl.config.max_data_transfer:
        return failed(INVALID_FIELD)
    if cmd.sgl.length < req.length:
        return failed(SGL_LENGTH_INVALID)
    try:
        window = log_page_window(builder(ctrl, req), req.offset, req.length)
    except SpecError:
        return failed(INVALID_FIELD)
    ctrl.log_page_read(req.lid, req.rae)
    return Reply(data=window)


# ------------------------------------------------------------------ features


def _number_of_queues(ctrl: Controller) -> int:
    count = ctrl.granted_io_queues - 1
    return NumberOfQueues(count, count).encode()


_GET_FEATURE_IO: dict[int, Callable[[Controller], int]] = {
    FeatureId.NUMBER_OF_QUEUES: _number_of_queues,
    FeatureId.KEEP_ALIVE_TIMER: lambda ctrl: ctrl.keep_alive.timeout_ms,
    FeatureId.ASYNC_EVENT_CONFIGURATION: lambda ctrl: ctrl.event_config,
    FeatureId.VOLATILE_WRITE_CACHE: lambda ctrl: int(ctrl.write_cache),
}
_GET_FEATURE_DISCOVERY: dict[int, Callable[[Controller], int]] = {
    FeatureId.KEEP_ALIVE_TIMER: lambda ctrl: ctrl.keep_alive.timeout_ms,
    FeatureId.ASYNC_EVENT_CONFIGURATION: lambda ctrl: ctrl.event_config,
}
_DEFAULT_FEATURE: dict[int, Callable[[Controller], int]] = {
    FeatureId.NUMBER_OF_QUEUES: lambda ctrl: NumberOfQueues(
        ctrl.config.max_io_queues - 1, ctrl.config.max_io_queues - 1
    ).encode(),
    FeatureId.KEEP_ALIVE_TIMER: lambda ctrl: 0,
    FeatureId.ASYNC_EVENT_CONFIGURATION: lambda ctrl: 0,
    FeatureId.VOLATILE_WRITE_CACHE: lambda ctrl: 1,
}


def _get_features(ctrl: Controller, cmd: Command, now: float) -> Reply:
    req = GetFeatures.from_command(cmd)
    table = _GET_FEATURE_DISCOVERY if ctrl.is_discovery else _GET_FEATURE_IO
    getter = table.get(req.fid)
    if getter is None:
        return failed(INVALID_FIELD)
    if req.sel == FeatureSelect.SUPPORTED_CAPABILITIES:
        return Reply(dw0=_CHANGEABLE)
    if req.sel in (FeatureSelect.DEFAULT, FeatureSelect.SAVED):
        return Reply(dw0=_DEFAULT_FEATURE[req.fid](ctrl))
    if req.sel != FeatureSelect.CURRENT:
        return failed(INVALID_FIELD)
    return Reply(dw0=getter(ctrl))


def _set_number_of_queues(ctrl: Controller, req: SetFeatures, now: float) -> Reply:
    asked = NumberOfQueues.decode(req.value)
    if 0xFFFF in (asked.nsqr, asked.ncqr):
        return failed(INVALID_FIELD)
    if ctrl.io_queues:
        return failed(COMMAND_SEQUENCE_ERROR)
    ctrl.granted_io_queues = min(max(asked.nsqr, asked.ncqr) + 1, ctrl.config.max_io_queues)
    return Reply(dw0=_number_of_queues(ctrl))


def _set_keep_alive(ctrl: Controller, req: SetFeatures, now: float) -> Reply:
    ctrl.keep_alive.set_timeout(KeepAliveTimer.decode(req.value).kato, now)
    return OK


def _set_event_config(ctrl: Controller, req: SetFeatures, now: float) -> Reply:
    ctrl.event_config = req.value & ctrl.supported_events
    return OK


def _set_write_cache(ctrl: Controller, req: SetFeatures, now: float) -> Reply:
    ctrl.write_cache = VolatileWriteCache.decode(req.value).enabled
    return OK


FeatureSetter = Callable[[Controller, SetFeatures, float], Reply]

_SET_FEATURE_IO: dict[int, FeatureSetter] = {
    FeatureId.NUMBER_OF_QUEUES: _set_number_of_queues,
    FeatureId.KEEP_ALIVE_TIMER: _set_keep_alive,
    FeatureId.ASYNC_EVENT_CONFIGURATION: _set_event_config,
    FeatureId.VOLATILE_WRITE_CACHE: _set_write_cache,
}
_SET_FEATURE_DISCOVERY: dict[int, FeatureSetter] = {
    FeatureId.KEEP_ALIVE_TIMER: _set_keep_alive,
    FeatureId.ASYNC_EVENT_CONFIGURATION: _set_event_config,
}


def _set_features(ctrl: Controller, cmd: Command, now: float) -> Reply:
    req = SetFeatures.from_command(cmd)
    table = _SET_FEATURE_DISCOVERY if ctrl.is_discovery else _SET_FEATURE_IO
    setter = table.get(req.fid)
    if setter is None:
        return failed(INVALID_FIELD)
    if req.save:
        return failed(FEATURE_NOT_SAVEABLE)
    return setter(ctrl, req, now)


# ------------------------------------------------------------------ the rest


def _keep_alive(ctrl: Controller, cmd: Command, now: float) -> Reply:
    ctrl.keep_alive.touch(now)
    return OK


def _async_event_request(ctrl: Controller, cmd: Command, now: float) -> Reply | None:
    try:
        dw0 = ctrl.request_async_event(cmd.cid)
    except OverflowError:
        return failed(AER_LIMIT_EXCEEDED)
    return None if dw0 is None else Reply(dw0=dw0)


def _abort(ctrl: Controller, cmd: Command, now: float) -> Reply:
    return Reply(dw0=1)  # bit 0: the command was not aborted


_IO_ADMIN: dict[int, Handler] = {
    AdminOpcode.IDENTIFY: _identify,
    AdminOpcode.GET_LOG_PAGE: _get_log_page,
    AdminOpcode.GET_FEATURES: _get_features,
    AdminOpcode.SET_FEATURES: _set_features,
    AdminOpcode.KEEP_ALIVE: _keep_alive,
    AdminOpcode.ASYNC_EVENT_REQUEST: _async_event_request,
    AdminOpcode.ABORT: _abort,
}
_DISCOVERY_ADMIN: dict[int, Handler] = {
    AdminOpcode.IDENTIFY: _identify,
    AdminOpcode.GET_LOG_PAGE: _get_log_page,
    AdminOpcode.GET_FEATURES: _get_features,
    AdminOpcode.SET_FEATURES: _set_features,
    AdminOpcode.KEEP_ALIVE: _keep_alive,
    AdminOpcode.ASYNC_EVENT_REQUEST: _async_event_request,
}


def execute_admin(ctrl: Controller, cmd: Command, now: float) -> Reply | None:
    """Run an admin command (not a Fabrics one) for `ctrl`.

    Args:
        ctrl: the controller of the admin queue.
        cmd: the command.
        now: the time, in seconds (Keep Alive restarts the timer).

    Returns:
        the reply, or None when the command is held (an Asynchronous Event Request).
    """
    handler = (_DISCOVERY_ADMIN if ctrl.is_discovery else _IO_ADMIN).get(cmd.opcode)
    if handler is None:
        return failed(INVALID_OPCODE)
    if not ctrl.ready:
        return failed(COMMAND_SEQUENCE_ERROR)
    return handler(ctrl, cmd, now)


# ------------------------------------------------------------------ Fabrics


def _property_get(ctrl: Controller, cmd: Command) -> Reply:
    try:
        req = PropertyGet.from_command(cmd)
        value = ctrl.read_property(req.offset, req.size)
    except (SpecError, PropertyError):
        return failed(INVALID_FIELD)
    return Reply(dw0=value & 0xFFFF_FFFF, dw1=value >> 32)


def _property_set(ctrl: Controller, cmd: Command) -> Reply:
    try:
        req = PropertySet.from_command(cmd)
        action = ctrl.write_property(req.offset, req.size, req.value)
    except (SpecError, PropertyError):
        return failed(INVALID_FIELD)
    except TransitionError:
        return failed(COMMAND_SEQUENCE_ERROR)
    return Reply(then=action)


_FABRICS: dict[int, Callable[[Controller, Command], Reply]] = {
    FabricsCommandType.PROPERTY_GET: _property_get,
    FabricsCommandType.PROPERTY_SET: _property_set,
    FabricsCommandType.CONNECT: lambda ctrl, cmd: failed(COMMAND_SEQUENCE_ERROR),
}


def execute_fabrics(ctrl: Controller, cmd: Command) -> Reply:
    """Run a Fabrics command on a connected admin queue (Property Get/Set; a second
    Connect is a sequence error)."""
    handler = _FABRICS.get(cmd.fctype)
    if handler is None:
        return failed(INVALID_OPCODE)
    return handler(ctrl, cmd)
