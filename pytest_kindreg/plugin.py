"""pytest wiring for pytest-kindreg: options, markers, fixtures and a few hooks.

Everything else is plain classes usable without pytest (PrivateRegistry, KindCluster,
KindRegistryEnvironment, the strategies).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
from collections.abc import Callable, Generator, Iterator
from types import FrameType
from typing import Any, NoReturn

import pytest

from pytest_kindreg.cluster import KindCluster, kind_available
from pytest_kindreg.docker_engine import RunIdentity, docker_available, docker_client
from pytest_kindreg.environment import KindRegistryEnvironment
from pytest_kindreg.errors import (
    ImageMissingError,
    KindConfigError,
    KindregError,
    MissingRequirementError,
    UnknownStrategyError,
)
from pytest_kindreg.host_sysctls import HostSysctls, report_once
from pytest_kindreg.kind_config import KindConfigSource, check_node_files, load_kind_config, missing_cni_installer
from pytest_kindreg.reaper import find_leftovers, reap
from pytest_kindreg.registry import PrivateRegistry
from pytest_kindreg.settings import Settings, add_options
from pytest_kindreg.sharing import SharedResource, Sharing
from pytest_kindreg.strategies import STRATEGIES, STRATEGY_NAMES, validate_strategy_names
from pytest_kindreg.workspace import KindPrivateRegistry

MARKER = "kindreg_strategy"
FIXTURE = "kind_private_registry"
ENVIRONMENT_FIXTURES = frozenset({"kindreg_environment", "kind_cluster", "kube_client"})
settings_key = pytest.StashKey[Settings]()
needed_key = pytest.StashKey[set[str]]()
summary_key = pytest.StashKey[list[str]]()
registry_key = pytest.StashKey[PrivateRegistry]()
workspace_key = pytest.StashKey[KindPrivateRegistry]()
sigterm_key = pytest.StashKey[Any]()
log = logging.getLogger("pytest_kindreg")


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_kindreg import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*names): run the test once per named auth strategy ({', '.join(STRATEGY_NAMES)}); "
        "the kind_private_registry fixture applies it. On a test that uses kindreg_environment, "
        "kind_cluster or kube_client without kind_private_registry, it names the strategies the test needs",
    )
    settings = Settings.from_config(config)
    for names in (settings.strategies_selected, settings.strategies_excluded, settings.default_strategies):
        try:
            validate_strategy_names(list(names))
        except UnknownStrategyError as exc:
            raise pytest.UsageError(str(exc)) from None
    config.stash[settings_key] = settings
    config.stash[needed_key] = set()
    # SIGTERM (CI cancelling a job) becomes an interrupt, so session teardown still removes
    # containers and clusters, as it does on Ctrl-C.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        config.stash[sigterm_key] = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_unconfigure(config: pytest.Config) -> None:
    previous = config.stash.get(sigterm_key, None)
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


def _strategies_for(definition: Any, settings: Settings) -> tuple[str, ...]:
    markers = list(definition.iter_markers(MARKER))
    if not markers:
        return settings.default_strategies
    marker = markers[0]  # the closest one wins, as with any pytest marker
    if marker.kwargs or not marker.args:
        raise pytest.UsageError(
            f"{definition.nodeid}: @pytest.mark.{MARKER} takes one or more strategy names as positional "
            f"arguments, e.g. @pytest.mark.{MARKER}('pull_secret', 'side_load'); got "
            f"args={marker.args!r} kwargs={marker.kwargs!r}. Valid strategies: {', '.join(STRATEGY_NAMES)}"
        )
    try:
        names = validate_strategy_names(list(marker.args))
    except UnknownStrategyError as exc:
        raise pytest.UsageError(f"{definition.nodeid}: {exc}") from None
    return tuple(dict.fromkeys(names))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if FIXTURE not in metafunc.fixturenames:
        return
    names = _strategies_for(metafunc.definition, metafunc.config.stash[settings_key])
    metafunc.parametrize("kindreg_strategy_name", names, ids=list(names), indirect=True, scope="function")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    settings = config.stash[settings_key]
    selected, deselected = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        strategy = callspec.params.get("kindreg_strategy_name") if callspec else None
        if strategy and settings.strategies_selected and strategy not in settings.strategies_selected:
            deselected.append(item)
            continue
        uses: tuple[str, ...] = ()
        if strategy:
            uses = (strategy,)
        elif ENVIRONMENT_FIXTURES & set(getattr(item, "fixturenames", ())):
            # Without kind_private_registry the marker is not a parametrization: it names the
            # strategies whose registries the test uses through the environment.
            uses = _strategies_for(getattr(item, "definition", item), settings)
        if set(uses) & set(settings.strategies_excluded):
            deselected.append(item)
            continue
        selected.append(item)
        config.stash[needed_key].update(uses)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
    needed = config.stash[needed_key]
    if needed:
        _check_kind_config(config, settings, sorted(needed))


CNI_HOOK_HOW = (
    "implement the hook pytest_kindreg_cluster_created(cluster) in a conftest.py and install your CNI "
    "there (it is called after kind create, before the plugin waits for Ready nodes)"
)


def _check_kind_config(config: pytest.Config, settings: Settings, strategies: list[str]) -> None:
    """What the kind config asks of this run, once the tests' strategies and their conftests'
    hooks are known (collection), before anything is created."""
    user_config = settings.kind_config
    try:
        check_node_files(user_config, {name: STRATEGIES[name].node_files for name in strategies})
        if user_config is not None and user_config.disables_default_cni and _cluster_created_hook(config) is None:
            raise missing_cni_installer(user_config, CNI_HOOK_HOW)
    except KindConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _cluster_created_hook(config: pytest.Config) -> Callable[[KindCluster], None] | None:
    """The hook pytest_kindreg_cluster_created as a callback, if anything implements it."""
    hook = config.pluginmanager.hook.pytest_kindreg_cluster_created
    if not hook.get_hookimpls():
        return None
    return lambda cluster: hook(cluster=cluster)


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash[settings_key]
    required = "all" if settings.strict else ", ".join(sorted(settings.required)) or "none (missing ones skip)"
    return [
        f"kindreg: registry image {settings.registry_image} ({settings.registry_auth} auth"
        f"{', pull scope ' + ' '.join(settings.pull_scope) if settings.registry_auth == 'token' else ''}), "
        f"node image {settings.node_image or 'kind default'}, "
        f"cluster {settings.cluster_name or 'kindreg-<run id>'} "
        f"({'reuse' if settings.reuse_cluster else 'new'}{', kept' if settings.keep_cluster else ''}), "
        f"kind config {settings.kind_config.origin if settings.kind_config else 'none'}, "
        f"required: {required}"
    ]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # Under xdist the workers delete the clusters, and nobody sees their lines: the controller,
    # once they are done, puts back what kubelet changed on the host or says how, visibly.
    config = session.config
    if not hasattr(config, "workerinput") and config.pluginmanager.has_plugin("dsession"):
        report_once(HostSysctls().restore(), _progress_writer(config))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(summary_key, None)
    if lines:
        terminalreporter.write_sep("-", "kindreg")
        for line in lines:
            terminalreporter.write_line(line)


def _require(settings: Settings, requirement: str, problem: str | None) -> None:
    """Skip when a requirement is missing, or fail when the run said it is required."""
    if problem is not None:
        _missing(settings, requirement, problem)


def _missing(settings: Settings, requirement: str, problem: str) -> NoReturn:
    if settings.requires(requirement):
        pytest.fail(f"kindreg: {problem} (required by --kindreg-strict/--kindreg-require)", pytrace=False)
    pytest.skip(f"kindreg: {problem}")


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def kindreg_settings(pytestconfig: pytest.Config) -> Settings:
    """The resolved options and ini keys (frozen)."""
    return pytestconfig.stash[settings_key]


@pytest.fixture(scope="session")
def kindreg_identity() -> RunIdentity:
    """The run id and labels every container, network and cluster of this run carries."""
    return RunIdentity()


@pytest.fixture(scope="session")
def kindreg_docker(kindreg_settings: Settings) -> Iterator[Any]:
    """A docker SDK client; skips (or fails, when required) if no engine answers."""
    _require(kindreg_settings, "docker", docker_available())
    client = docker_client()
    leftovers = find_leftovers(client)
    if leftovers:
        problems = reap(client, leftovers, kind_bin=kindreg_settings.kind_bin)
        log.warning("kindreg: removed what dead runs left behind: %s", leftovers.describe())
        for problem in problems:
            log.warning("kindreg: could not remove %s", problem)
        if leftovers.clusters:  # a dead run's kubelet changed the host's sysctls
            report_once(HostSysctls().restore(), functools.partial(log.warning, "kindreg: %s"))
    yield client
    client.close()


@pytest.fixture(scope="session")
def kindreg_test_image(kindreg_settings: Settings, kindreg_docker: Any) -> str:
    """A small local image to push (``kindreg-test/busybox:1.0`` unless ini kindreg_test_image says)."""
    from docker.errors import ImageNotFound

    try:
        kindreg_docker.images.get(kindreg_settings.test_image)
    except ImageNotFound:
        _require(
            kindreg_settings,
            "docker",
            f"test image {kindreg_settings.test_image!r} is not present; build it offline with "
            "`kindreg build-images` (or pull/build it and set ini kindreg_test_image)",
        )
    return kindreg_settings.test_image


@pytest.fixture(scope="session")
def private_registry(
    pytestconfig: pytest.Config, kindreg_settings: Settings, kindreg_docker: Any, kindreg_identity: RunIdentity
) -> Iterator[PrivateRegistry]:
    """A started :class:`PrivateRegistry` (htpasswd or token auth, random credentials), for the whole session."""
    registry = PrivateRegistry(
        image=kindreg_settings.registry_image,
        identity=kindreg_identity,
        docker=kindreg_docker,
        auth=kindreg_settings.registry_auth,
        pull_scope=kindreg_settings.pull_scope,
        token_listen=kindreg_settings.token_listen,
        token_realm_host=kindreg_settings.token_realm_host,
    )
    problem = None
    try:
        registry.start()
    except ImageMissingError as exc:
        problem = str(exc)  # reported outside the except block: one message, no chained traceback
    _require(kindreg_settings, "docker", problem)
    pytestconfig.stash[registry_key] = registry
    try:
        yield registry
    finally:
        registry.stop()


def _xdist_shared(config: pytest.Config, settings: Settings) -> bool:
    return hasattr(config, "workerinput") and settings.xdist == "shared"


def _new_environment(
    strategies: list[str],
    settings: Settings,
    identity: RunIdentity,
    config: pytest.Config,
    kind_config: KindConfigSource | None,
) -> KindRegistryEnvironment:
    user_config = load_kind_config(kind_config) if kind_config is not None else None
    cluster_name = settings.cluster_name or (user_config.name if user_config is not None else None)
    workerinput = getattr(config, "workerinput", None)
    if cluster_name and workerinput is not None and settings.xdist == "per-worker":
        cluster_name = f"{cluster_name}-{workerinput['workerid']}"
        if user_config is not None and user_config.name:
            user_config = user_config.renamed(cluster_name)
    return KindRegistryEnvironment(
        strategies,
        cluster_name=cluster_name,
        node_image=settings.node_image,
        workers=settings.workers,
        kind_config=user_config,
        kind_bin=settings.kind_bin,
        registry_image=settings.registry_image,
        registry_auth=settings.registry_auth,
        pull_scope=settings.pull_scope,
        access_token_ttl=settings.access_token_ttl,
        token_listen=settings.token_listen,
        token_realm_host=settings.token_realm_host,
        keep_cluster=settings.keep_cluster,
        reuse_cluster=settings.reuse_cluster,
        identity=identity,
        progress=_progress_writer(config),
        on_cluster_created=_cluster_created_hook(config),
    )


def _started(environment: KindRegistryEnvironment) -> KindRegistryEnvironment:
    environment.start()
    return environment


@pytest.fixture(scope="session")
def kindreg_kind_config(kindreg_settings: Settings) -> KindConfigSource | None:
    """Your kind v1alpha4 ``Cluster`` config, the base of the session cluster's config: a YAML
    file's path, a dict, or None (one control-plane node plus ``--kindreg-workers``).

    By default ``--kindreg-kind-config`` / ini ``kindreg_kind_config``; override this fixture to
    build the config in code.
    """
    return kindreg_settings.kind_config


@pytest.fixture(scope="session")
def kindreg_environment(
    pytestconfig: pytest.Config,
    kindreg_settings: Settings,
    kindreg_docker: Any,
    kindreg_identity: RunIdentity,
    kindreg_kind_config: KindConfigSource | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KindRegistryEnvironment]:
    """The registries of every strategy the collected tests use, and ONE cluster for all of them.

    Under pytest-xdist, by default one environment serves every worker: created once under a
    file lock, torn down by the last worker (``kindreg_xdist = per-worker`` gives each its own).
    """
    _require(kindreg_settings, "kind", kind_available(kindreg_settings.kind_bin))
    needed: set[str] = pytestconfig.stash[needed_key]
    strategies = sorted(needed or set(kindreg_settings.default_strategies))
    acquire: Callable[[], KindRegistryEnvironment]
    release: Callable[[KindRegistryEnvironment], object]
    if _xdist_shared(pytestconfig, kindreg_settings):
        workerinput: dict[str, Any] = pytestconfig.workerinput  # type: ignore[attr-defined]
        # Labelled with the xdist controller's pid: it outlives every worker, so no reaper takes
        # these resources for a dead run's while any worker still uses them.
        identity = RunIdentity(run_id=str(workerinput["testrunuid"])[:6], pid=os.getppid())
        shared = SharedResource(
            tmp_path_factory.getbasetemp().parent / "kindreg-shared",
            "environment",
            Sharing(
                create=lambda: _started(
                    _new_environment(strategies, kindreg_settings, identity, pytestconfig, kindreg_kind_config)
                ),
                export=KindRegistryEnvironment.export_state,
                attach=KindRegistryEnvironment.attach,
                close=KindRegistryEnvironment.close,
                detach=KindRegistryEnvironment.detach,
            ),
        )
        acquire, release = shared.acquire, shared.release
    else:
        acquire = lambda: _started(  # noqa: E731 - the same shape as the shared branch
            _new_environment(strategies, kindreg_settings, kindreg_identity, pytestconfig, kindreg_kind_config)
        )
        release = KindRegistryEnvironment.close
    missing: MissingRequirementError | None = None
    failed: KindregError | None = None
    try:
        environment = acquire()
    except MissingRequirementError as exc:
        missing = exc  # reported outside the except block: one message, no chained traceback
    except KindregError as exc:
        failed = exc  # e.g. a node image that cannot work, kind's own error: the message says it all
    if missing is not None:
        # A missing image is part of what "docker" requires; kind is its own requirement.
        _missing(kindreg_settings, "kind" if missing.requirement == "kind" else "docker", str(missing))
    if failed is not None:
        pytest.fail(f"kindreg: {failed}", pytrace=False)
    pytestconfig.stash[summary_key] = environment.describe()
    try:
        yield environment
    finally:
        release(environment)


def _progress_writer(config: pytest.Config) -> Callable[[str], None]:
    """Progress lines on the terminal while the run waits (cluster creation, image loads)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def write(message: str) -> None:
        log.info("kindreg: %s", message)
        if reporter is None:
            return
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            reporter.write_line(f"kindreg: {message}")

    return write


@pytest.fixture(scope="session")
def kind_cluster(kindreg_environment: KindRegistryEnvironment) -> KindCluster:
    """The session's :class:`KindCluster`, already wired to the registries."""
    assert kindreg_environment.cluster is not None
    return kindreg_environment.cluster


@pytest.fixture(scope="session")
def kube_client(kind_cluster: KindCluster) -> Any:
    """A ``kubernetes.client.ApiClient`` bound to the cluster's own kubeconfig."""
    return kind_cluster.api_client()


@pytest.fixture
def kindreg_strategy_name(request: pytest.FixtureRequest) -> str:
    """The strategy of this test case (set by the kindreg_strategy marker's parametrization)."""
    return str(getattr(request, "param", None) or request.config.stash[settings_key].default_strategies[0])


@pytest.fixture
def kind_private_registry(
    request: pytest.FixtureRequest, kindreg_environment: KindRegistryEnvironment, kindreg_strategy_name: str
) -> Iterator[KindPrivateRegistry]:
    """The strategy in effect, its registry, the cluster, a client and a namespace of the test's own."""
    for context in kindreg_environment.contexts.values():
        context.registry.ensure_running()
    workspace = kindreg_environment.workspace(kindreg_strategy_name, test_name=request.node.name)
    request.node.stash[workspace_key] = workspace
    with workspace:
        yield workspace


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not report.failed or call.when != "call":
        return report
    workspace = item.stash.get(workspace_key, None)
    if workspace is not None:
        for title, text in _diagnostics(workspace):
            report.sections.append((f"kindreg {title}", text))
    elif "private_registry" in getattr(item, "fixturenames", ()):
        registry = item.config.stash.get(registry_key, None)
        if registry is not None:
            report.sections.append((f"kindreg registry {registry.name} log (tail)", registry.logs_tail(30)))
    return report


def _diagnostics(workspace: KindPrivateRegistry) -> list[tuple[str, str]]:
    from pytest_kindreg.diagnosis import format_event

    sections: list[tuple[str, str]] = []
    try:
        events = workspace.core.list_namespaced_event(workspace.namespace).items
        sections.append(("pod events", "\n".join(format_event(e) for e in events) or "(none)"))
    except Exception as exc:
        sections.append(("pod events", f"(unavailable: {exc})"))
    sections.append((f"registry {workspace.registry.name} log (tail)", workspace.registry.logs_tail(30)))
    try:
        node = workspace.cluster.nodes()[0]
        sections.append((f"{node} containerd journal (tail)", workspace.cluster.journal_tail(node)))
    except KindregError as exc:
        sections.append(("containerd journal", f"(unavailable: {exc})"))
    return sections
