"""kubeyaml.load returns what PyYAML's safe loader returns, parsing the usual documents without PyYAML.

The reference is the loader kubeyaml promises to match: `yaml.load(text, Loader=CSafeLoader)` (SafeLoader
when PyYAML has no libyaml). Results are compared type-strictly (True is not 1, 1 is not 1.0, and key
order counts), errors by kind: PyYAML raising means kubeyaml raises `YamlError`.
"""

from __future__ import annotations

import base64
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubectl_vcerts import kubeyaml
from tests.support.pki_builder import Options, cached_pki
from tests.support.vcluster import VClusterSpec, vc_config

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
REPO = Path(__file__).resolve().parents[2]

CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nnot a real certificate\n" * 8).decode()
CERT = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nclient\n" * 8).decode()
KEY = base64.b64encode(b"-----BEGIN RSA PRIVATE KEY-----\nclient key\n" * 8).decode()

# Exactly as kubectl (client-go clientcmd.Write → sigs.k8s.io/yaml) writes ~/.kube/config.
KUBECTL_CONFIG = f"""apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {CA}
    server: https://127.0.0.1:6443
  name: kind-dev
- cluster:
    insecure-skip-tls-verify: true
    server: https://127.0.0.1:16443
  name: other
contexts:
- context:
    cluster: kind-dev
    namespace: team-a
    user: kind-dev
  name: kind-dev
- context:
    cluster: other
    user: other
  name: other
current-context: kind-dev
kind: Config
preferences: {{}}
users:
- name: kind-dev
  user:
    client-certificate-data: {CERT}
    client-key-data: {KEY}
- name: other
  user:
    token: abc.def-123
"""

# Exactly as kubeadm 1.36 writes admin.conf / scheduler.conf (`kubeadm init phase kubeconfig`).
KUBEADM_CONFIG = f"""apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {CA}
    server: https://127.0.0.1:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: system:kube-scheduler
  name: system:kube-scheduler@kubernetes
current-context: system:kube-scheduler@kubernetes
kind: Config
users:
- name: system:kube-scheduler
  user:
    client-certificate-data: {CERT}
    client-key-data: {KEY}
"""


def vc_config_text(spec: VClusterSpec) -> str:
    """config.yaml of vc-config-NAME the way tests/support/vcluster.py writes it."""
    return yaml.safe_dump(vc_config("vc", "team-a", spec), sort_keys=False)


VC_CONFIGS = {
    "default": vc_config_text(VClusterSpec()),
    "k3s": vc_config_text(VClusterSpec(distro="k3s", version="0.32.1")),
    "deployed etcd with extra SANs": vc_config_text(VClusterSpec(
        deployed_etcd=True, replicas=3, persistence=False, extra_sans=("vc.example.com", "10.0.0.1"))),
    "private nodes": vc_config_text(VClusterSpec(private_nodes=True)),
}


def same(a: Any, b: Any) -> bool:
    """Equal, with equal types all the way down (True != 1, 1 != 1.0) and mapping keys in equal order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def reference(text: str | bytes) -> tuple[str, Any]:
    """("ok", document) or ("error", the exception) from the loader kubeyaml matches."""
    try:
        return "ok", yaml.load(text, Loader=LOADER)  # noqa: S506 - a safe loader
    except (yaml.YAMLError, ValueError) as exc:
        return "error", exc


def assert_matches(text: str | bytes) -> Any:
    """kubeyaml.load agrees with the reference on `text`; returns the document (None after an error)."""
    kind, expected = reference(text)
    if kind == "error":
        with pytest.raises(kubeyaml.YamlError) as caught:
            kubeyaml.load(text)
        assert not isinstance(caught.value, yaml.YAMLError)
        assert type(caught.value.__cause__) is type(expected)
        return None
    got = kubeyaml.load(text)
    assert same(got, expected), (text, got, expected)
    return got


def test_the_type_strict_comparison_tells_bools_ints_floats_and_key_order_apart() -> None:
    assert same({"a": [1, None, "x"]}, {"a": [1, None, "x"]})
    assert not same(True, 1)
    assert not same(1, 1.0)
    assert not same({"a": 1, "b": 2}, {"b": 2, "a": 1})
    assert not same([{"a": True}], [{"a": 1}])
    assert same(float("nan"), float("nan"))


FAST = [
    pytest.param(KUBECTL_CONFIG, id="a kubeconfig exactly as kubectl writes it"),
    pytest.param(KUBEADM_CONFIG, id="a kubeconfig exactly as kubeadm writes it"),
    *(pytest.param(text, id=f"vc-config config.yaml of the {name} fixture vCluster")
      for name, text in VC_CONFIGS.items()),
    pytest.param("", id="an empty document is null"),
    pytest.param("# only\n\n   # comments\n", id="comments and blank lines alone are null"),
    pytest.param("---\na: 1\n", id="a leading document start line is skipped"),
    pytest.param("# head\n---\n- x\n", id="a document start line after a comment is skipped"),
    pytest.param("a:\n- x\n- y\nb: z\n", id="a sequence at its key's column"),
    pytest.param("a:\n  - x\n  - y\nb: z\n", id="a sequence indented under its key"),
    pytest.param("- a: 1\n  b: 2\n- c: 3\n", id="compact mappings in a sequence"),
    pytest.param("-   a: 1\n    b:\n    - 2\n", id="compact mappings at indent four with a sequence"),
    pytest.param("- a:\n  - x\n  b: 1\n", id="a sequence at its key's column inside a compact mapping"),
    pytest.param("- a:\n- x\n", id="a key with nothing under it in a compact mapping is null"),
    pytest.param("- - a\n  - b\n- - c\n", id="nested compact sequences"),
    pytest.param("-\n- a\n-\n  b: 1\n", id="empty sequence items are null or the block below"),
    pytest.param("a:\nb: 1\nc:\n", id="keys with nothing after them are null"),
    pytest.param("a: {}\nb: []\nc:\n- {}\n- []\n", id="empty flow collections"),
    pytest.param("{}\n", id="an empty flow mapping as the document"),
    pytest.param("a: b # c: d\ne: 'f' # g\nh: # i\n  j: 1 #k\n", id="comments after values"),
    pytest.param("- x # y\n- # z\n  - w\n", id="comments after sequence entries"),
    pytest.param("a: yes\nb: No\nc: ON\nd: off\ne: TRUE\nf: false\ng: True\nh: NO\n",
                 id="the YAML 1.1 bool words"),
    pytest.param("a: ~\nb: null\nc: Null\nd: NULL\n", id="the null words"),
    pytest.param("a: 0\nb: -12\nc: +7\nd: 123456789012345678\ne: -0\n",
                 id="decimal ints with and without signs"),
    pytest.param("a: 0.36.1\nb: v1\nc: 1e3\nd: 1.2.3.4\ne: 127.0.0.1\nf: 10.96.0.0/12\ng: 5Gi\n",
                 id="strings that merely look numeric"),
    pytest.param("a: y\nb: n\nc: nul\nd: yess\ne: '1'\nf: 'true'\ng: '~'\n",
                 id="near-miss words stay strings"),
    pytest.param("a: 'it''s'\nb: ' x  '\nc: ''\nd: '#x: y'\n", id="single-quoted scalars"),
    pytest.param('a: "yes"\nb: "#x"\nc: ""\nd: "it\'s"\n', id="double-quoted scalars without escapes"),
    pytest.param("'yes': 1\n\"a b\": 2\n'': 3\n", id="quoted keys"),
    pytest.param("server: https://127.0.0.1:6443\nname: system:kube-scheduler@kubernetes\n",
                 id="colons not followed by a space stay in the scalar"),
    pytest.param("a: 1\nb: 2\na: 3\n", id="a repeated key keeps its first position and last value"),
    pytest.param("hello world\n", id="a plain scalar as the whole document"),
    pytest.param("  a: 1\n  b:\n  - x\n", id="a document indented as a whole"),
    pytest.param("- a\n- 1\n- true\n", id="a sequence as the document"),
    pytest.param("a: b   \nc:   \n  d: e  \n", id="trailing spaces are ignored"),
    pytest.param("a:\n    b:\n        c: d\n", id="indentation by four"),
    pytest.param("a: it's a#b \"c\" x:y\n", id="quotes and hashes inside a plain scalar"),
    pytest.param("a: x,y[0]{z}\nb[1]: c\n", id="flow characters inside block plain scalars"),
    pytest.param("-a: 1\nb: -x\nc: --\n", id="plain scalars starting with a dash and a non-space"),
    pytest.param("app.kubernetes.io/name: vcluster\nhelm.sh/chart: vcluster-0.36.1\n", id="label-style keys"),
    pytest.param("a:  b\nc:    'd'\n", id="several spaces after the colon"),
    pytest.param("a:\n\n  # between\n\n  b: 1\n", id="blank and comment lines inside a block"),
    pytest.param(b"a: 1\nb: x\n", id="ASCII bytes parse like text"),
]


@pytest.mark.parametrize("text", FAST)
def test_the_fast_path_parses_these_documents_itself_and_agrees(text: str | bytes) -> None:
    fast = kubeyaml.fast_load(text)
    assert fast is not kubeyaml.FALLBACK
    kind, expected = reference(text)
    assert kind == "ok"
    assert same(fast, expected), (fast, expected)
    assert same(kubeyaml.load(text), expected)
    assert same(fast, yaml.load(text, Loader=yaml.SafeLoader))  # PyYAML without libyaml agrees


FALLBACK = [
    pytest.param("a:\tb\n", id="a tab"),
    pytest.param("a:\n\t- b\n", id="a tab as indentation"),
    pytest.param("a: &x 1\nb: *x\n", id="an anchor and an alias"),
    pytest.param("a: !!str 1\n", id="a tag"),
    pytest.param("a: |\n  x\n  y\n", id="a literal block scalar"),
    pytest.param("a: >-\n  x\n  y\n", id="a folded block scalar"),
    pytest.param("a: b\n  c\n", id="a plain scalar continued on the next line"),
    pytest.param("- b\n  c\n", id="a sequence item continued on the next line"),
    pytest.param("a\nb\n", id="a two-line plain scalar document"),
    pytest.param("a: 'b\n  c'\n", id="a single-quoted scalar over two lines"),
    pytest.param('a: "b\n  c"\n', id="a double-quoted scalar over two lines"),
    pytest.param('a: "x\\ty"\n', id="a double-quoted scalar with an escape"),
    pytest.param('a: "x\\\n  y"\n', id="a double-quoted scalar with an escaped line break"),
    pytest.param("a: {b: 1}\n", id="a non-empty flow mapping"),
    pytest.param("a: [1, 2]\n", id="a non-empty flow sequence"),
    pytest.param("a: { }\n", id="an empty flow mapping with a space inside"),
    pytest.param("? a\n: b\n", id="a complex key"),
    pytest.param("%YAML 1.1\n---\na: 1\n", id="a directive"),
    pytest.param("a: 1\n---\nb: 2\n", id="a second document"),
    pytest.param("a: 1\n...\n", id="a document end marker"),
    pytest.param("--- a\n", id="content on the document start line"),
    pytest.param("--- |\n  x\n", id="a block scalar on the document start line"),
    pytest.param("\ufeffa: 1\n", id="a byte order mark"),
    pytest.param(b"\xef\xbb\xbfa: 1\n", id="a byte order mark in bytes"),
    pytest.param("a: 1\r\nb: 2\r\n", id="carriage returns"),
    pytest.param("a: caf\u00e9\n", id="non-ASCII text"),
    pytest.param("a: caf\u00e9\n".encode(), id="non-ASCII UTF-8 bytes"),
    pytest.param("a: \x07\n", id="a control character"),
    pytest.param("a: 1.5\n", id="a float"),
    pytest.param("a: .inf\n", id="infinity"),
    pytest.param("a: -.Inf\n", id="negative infinity"),
    pytest.param("a: .nan\n", id="not a number"),
    pytest.param("a: 1.\n", id="a float with nothing after the point"),
    pytest.param("a: 0755\n", id="an octal int"),
    pytest.param("a: 0x1F\n", id="a hexadecimal int"),
    pytest.param("a: 0b101\n", id="a binary int"),
    pytest.param("a: 1_000\n", id="an int with underscores"),
    pytest.param("a: 1:20\n", id="a sexagesimal int"),
    pytest.param("a: 190:20:30.15\n", id="a sexagesimal float"),
    pytest.param("a: 1234567890123456789012345\n", id="a long int"),
    pytest.param("a: 2001-12-14\n", id="a date"),
    pytest.param("a: 2001-12-14t21:59:43.10-05:00\n", id="a timestamp"),
    pytest.param("a: 2001-13-45\n", id="an impossible date"),
    pytest.param("a: 2001-12-15T02:59:43.1Z\n", id="a timestamp in UTC"),
    pytest.param("a: 2001-12-14 21:59:43.10 -5\n", id="a timestamp with spaces"),
    pytest.param("a: -.INF\n", id="upper case infinity"),
    pytest.param("a: .NaN\n", id="mixed case not a number"),
    pytest.param("a: 1.0e+3\n", id="a float with an exponent"),
    pytest.param("a: 1.0E-3\n", id="a float with an upper case exponent"),
    pytest.param("a: 0xabcdef\n", id="a lower case hexadecimal int"),
    pytest.param("a: 0xABCDEF\n", id="an upper case hexadecimal int"),
    pytest.param("a:\n  <<: {}\n  b: 1\n", id="a merge key"),
    pytest.param("=: 1\n", id="the value key"),
    pytest.param("yes: 1\n", id="a key that resolves to a bool"),
    pytest.param("1: a\n", id="a key that resolves to an int"),
    pytest.param("~: a\n", id="a key that resolves to null"),
    pytest.param("a : 1\n", id="a space before the colon"),
    pytest.param("'a' : 1\n", id="a space between a quoted key and its colon"),
    pytest.param("a:b: c\n", id="a key holding a colon"),
    pytest.param("k" * 1100 + ": v\n", id="a key too long for a simple key"),
    pytest.param("a: @x\n", id="a plain scalar starting with an at sign"),
    pytest.param("a: `x\n", id="a plain scalar starting with a backquote"),
    pytest.param("a: %x\n", id="a plain scalar starting with a percent sign"),
    pytest.param("a: ?x\n", id="a plain scalar starting with a question mark"),
    pytest.param("a: :x\n", id="a plain scalar starting with a colon"),
    pytest.param("a: b: c\n", id="a colon and space inside a value"),
    pytest.param("a: b:\n", id="a value ending in a colon"),
    pytest.param("a: - b\n", id="a sequence entry after a key on the same line"),
    pytest.param("a: 'b' c\n", id="text after a quoted scalar"),
    pytest.param("a: 'b'#c\n", id="a comment right after a quoted scalar"),
    pytest.param("a #b: c\n", id="a comment inside a key"),
    pytest.param("- a #b: c\n", id="a comment holding a colon after a sequence entry"),
    pytest.param("a:\n    b: 1\n  c: 2\n", id="a key less indented than its siblings"),
    pytest.param("a:\n  - x\n  b: 1\n", id="a key after an indented sequence at the sequence's column"),
    pytest.param("- a: 1\n b: 2\n", id="a key between a sequence and its compact mapping"),
    pytest.param("a: 1\n- b\n", id="a sequence entry among keys"),
    pytest.param("- a\nb: 1\n", id="a key after a top-level sequence"),
    pytest.param("a:\n  b\n", id="a scalar on its own line under a key"),
    pytest.param("a: *\n", id="an alias without a name"),
    pytest.param("a: |-\n", id="an empty block scalar"),
    pytest.param("- " * 200 + "x\n", id="nesting deeper than the fast parser goes"),
]


@pytest.mark.parametrize("text", FALLBACK)
def test_these_documents_go_to_pyyaml_with_the_same_result(text: str | bytes) -> None:
    assert kubeyaml.fast_load(text) is kubeyaml.FALLBACK
    assert_matches(text)


def test_invalid_yaml_raises_yaml_error_caused_by_pyyaml_without_quoting_the_document() -> None:
    text = KUBEADM_CONFIG.replace(f"client-key-data: {KEY}", f"client-key-data: {KEY}: [")
    with pytest.raises(kubeyaml.YamlError) as caught:
        kubeyaml.load(text)
    error = caught.value
    assert isinstance(error, ValueError)
    assert not isinstance(error, yaml.YAMLError)
    assert isinstance(error.__cause__, yaml.YAMLError)
    assert KEY[:40] not in str(error)
    assert "line 18" in str(error)  # the client-key-data line


def test_a_value_pyyaml_cannot_construct_raises_yaml_error() -> None:
    with pytest.raises(kubeyaml.YamlError) as caught:
        kubeyaml.load("a: 2001-13-45\n")
    assert type(caught.value.__cause__) is ValueError


def test_kubeconfigs_of_the_unit_test_pki_take_the_fast_path() -> None:
    data = cached_pki(Options())
    for conf in ("admin.conf", "controller-manager.conf", "scheduler.conf"):
        fast = kubeyaml.fast_load(data[conf])
        assert fast is not kubeyaml.FALLBACK, conf
        assert same(fast, yaml.load(data[conf], Loader=LOADER)), conf  # noqa: S506 - a safe loader


@pytest.mark.binaries
def test_kubeconfigs_of_the_real_kubeadm_take_the_fast_path(tmp_path: Path) -> None:
    from tests.support.kubeadm_pki import generate_vcluster_pki

    data = generate_vcluster_pki(tmp_path / "kubeadm", name="vc", namespace="ns")
    for conf in ("admin.conf", "controller-manager.conf", "scheduler.conf"):
        fast = kubeyaml.fast_load(data[conf])
        assert fast is not kubeyaml.FALLBACK, conf
        assert same(fast, yaml.load(data[conf], Loader=LOADER)), conf  # noqa: S506 - a safe loader


def test_the_check_path_parses_typical_documents_without_importing_pyyaml(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(KUBECTL_CONFIG)
    (tmp_path / "admin.conf").write_text(KUBEADM_CONFIG)
    (tmp_path / "config.yaml").write_text(VC_CONFIGS["deployed etcd with extra SANs"])
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from kubectl_vcerts import kubeyaml\n"
        "from kubectl_vcerts.kube.client import KubeTarget\n"
        "from kubectl_vcerts.kube.rest import load_rest_config\n"
        "from kubectl_vcerts.pki.kubeconfig import parse_kubeconfig\n"
        "from kubectl_vcerts.rotation.discovery import config_facts\n"
        "from kubectl_vcerts.rotation.records import SecretObject\n"
        "d = Path(sys.argv[1])\n"
        "assert kubeyaml.load((d / 'config').read_text())['current-context'] == 'kind-dev'\n"
        "assert load_rest_config(KubeTarget(kubeconfig=str(d / 'config'))) is not None\n"
        "assert parse_kubeconfig((d / 'admin.conf').read_bytes()).user_name == 'system:kube-scheduler'\n"
        "secret = SecretObject(name='vc-config-vc', namespace='ns',"
        " data={'config.yaml': (d / 'config.yaml').read_bytes()})\n"
        "print(config_facts(secret).backing_store.value)\n"
        "print(sorted(m for m in sys.modules if m == 'yaml' or m.startswith(('yaml.', '_yaml'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=REPO, capture_output=True,
                            text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["deployed-etcd", "[]"]


# ---- properties ---------------------------------------------------------------------------------------

WORDS = [
    "yes", "Yes", "No", "NO", "ON", "on", "off", "Off", "null", "Null", "~", "true", "False", "TRUE",
    "y", "n",
    "0.36.1", "v1.36.3", "2001-12-14", "2001-12-14 21:59:43.10 -5", "0755", "00", "1_000", "+1", "-1", "-0",
    "0", "12", ".inf", "-.inf", ".NaN", "1.5", "1.", "1e3", "1.0e+3", "0x1F", "0o17", "0b11", "1:20",
    "190:20:30.15", "<<", "=", "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t", "aGVsbG8=",
    "https://127.0.0.1:6443", "system:kube-scheduler@kubernetes", "10.96.0.0/12", "-", "--", "---", "...",
    "- a", "a: b", "a:", ":a", "?a", "? a", "#x", "a #x", "a#x", " x", "x ", "", "'", "''", '"', "{}", "[]",
    "@x", "%x", "!x", "&x", "*x", "|", ">", "a,b", "[a]", "{a}", "\\", "\t", "\n", "a\nb", "caf\u00e9",
    "\u2028", "\x85", "\ufeff",
]
ALPHABET = "ab yYnN:#'\"-{}[],&*!|>?%@`~=<.+019_\\/\t\n\u00e9"
texts = st.one_of(
    st.sampled_from(WORDS),
    st.text(ALPHABET, max_size=12),
    st.tuples(st.sampled_from(WORDS), st.text(ALPHABET, max_size=4), st.sampled_from(WORDS)).map("".join),
)
scalars = st.one_of(texts, st.integers(), st.floats(), st.booleans(), st.none())
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=24,
)
dump_styles = st.fixed_dictionaries({
    "indent": st.sampled_from([2, 4]),
    "sort_keys": st.booleans(),
    "width": st.sampled_from([12, 80, 4096]),
    "allow_unicode": st.booleans(),
    "explicit_start": st.booleans(),
})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents, style=dump_styles)
def test_any_document_safe_dump_writes_loads_as_pyyaml_loads_it(doc: Any, style: dict[str, Any]) -> None:
    text = yaml.safe_dump(doc, default_flow_style=False, **style)
    kind, expected = reference(text)
    assert kind == "ok"
    assert same(kubeyaml.load(text), expected)
    fast = kubeyaml.fast_load(text)
    assert fast is kubeyaml.FALLBACK or same(fast, expected)


# Names as in kubeconfigs and chart values; safe_dump would quote the YAML 1.1 words, so they are left out.
RESERVED = {"yes", "no", "on", "off", "true", "false", "null"}
names = st.from_regex(r"[a-z][a-z0-9]{0,6}([-./][a-z0-9]{1,6}){0,2}", fullmatch=True).filter(
    lambda s: s not in RESERVED)
plain_scalars = st.one_of(names, st.integers(-(10**17), 10**17), st.booleans(), st.none())
plain_documents = st.recursive(
    st.dictionaries(names, plain_scalars, max_size=4),
    lambda inner: st.dictionaries(names, st.one_of(inner, plain_scalars,
                                                   st.lists(st.one_of(inner, plain_scalars), max_size=3)),
                                  max_size=4),
    max_leaves=16,
)


@settings(max_examples=200, deadline=None)
@given(doc=plain_documents, indent=st.sampled_from([2, 4]), sort_keys=st.booleans())
def test_documents_of_kubeconfig_like_values_never_need_pyyaml(doc: dict[str, Any], indent: int,
                                                               sort_keys: bool) -> None:
    text = yaml.safe_dump(doc, default_flow_style=False, indent=indent, sort_keys=sort_keys)
    fast = kubeyaml.fast_load(text)
    assert fast is not kubeyaml.FALLBACK, text
    assert same(fast, yaml.load(text, Loader=LOADER)), text  # noqa: S506 - a safe loader


SEEDS = [KUBECTL_CONFIG, KUBEADM_CONFIG, VC_CONFIGS["default"],
         "a:\n- b: 'c'\n  d: \"e\"\n- - 1\n  - -2\nf: {} # g\nh: []\n"]
NASTY = [*" \n-:#'\"{}[],&*!|>?%@`~=<.+0159_\\\tyYnNeE", "\r", "\u00e9", "\ufeff", "\x85", "\x00"]
edits = st.lists(st.tuples(st.sampled_from(["insert", "delete", "replace"]), st.integers(0, 10**6),
                           st.sampled_from(NASTY)), min_size=1, max_size=5)


def edit(text: str, changes: list[tuple[str, int, str]]) -> str:
    for op, where, char in changes:
        at = where % (len(text) + 1)
        if op == "insert":
            text = text[:at] + char + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + 1:]
        else:
            text = text[:at] + char + text[at + 1:]
    return text


@settings(max_examples=1000, deadline=None)
@given(seed=st.sampled_from(SEEDS), changes=edits, as_bytes=st.booleans())
def test_an_edited_document_loads_or_fails_as_pyyaml_does(seed: str, changes: list[tuple[str, int, str]],
                                                        as_bytes: bool) -> None:
    text = edit(seed, changes)
    assert_matches(text.encode() if as_bytes else text)


# Hand-written block documents in the styles kubectl, kubeadm, Helm and people use: sequences at their
# key's column or indented, `-` followed by one or more spaces, compact and non-compact entries,
# comments after values and on their own lines, plain and quoted scalars that are and are not strings.
LINE_SCALARS = [
    "a", "b c", "yes", "Off", "~", "null", "0", "-1", "+2", "0.36.1", "1e3", "1.5", "'q'", "'it''s'", '"dq"',
    "{}", "[]", "a#b", "x:y", "https://127.0.0.1:6443/p?q=1", "-x", "--", "5Gi", "10.0.0.1", "a,b", "''",
    '""', "a 'b' \"c\"", "+", "..x", "1-2", "2001-12-14", "a: b", "&x a", "- a", "'a",
]
LINE_KEYS = ["a", "b", "key-x", "k.y/z", "'q k'", '"d"', "-k", "a b", "x1", "''", "a'b", "yes", "1", "<<"]
COMMENTS = ["", "", "", " # c", " #c: d", "  # x", "#x"]


def block_lines(rnd: Any, depth: int, col: int, first: str | None, out: list[str]) -> bool:
    """Append a mapping or sequence at column `col` (its first line starting with `first` when it is
    the compact content of a `- `); False when it chose to be a scalar instead."""
    kind = rnd.choice(["map", "seq", "scalar"] if depth < 4 else ["scalar"])
    if kind == "scalar":
        return False
    for i in range(rnd.randint(1, 3)):
        prefix = first if i == 0 and first is not None else " " * col
        if kind == "map":
            key = rnd.choice(LINE_KEYS)
            child: list[str] = []
            child_col = col + rnd.choice([0, 1, 2, 4])
            if rnd.random() < 0.5 and block_lines(rnd, depth + 1, child_col, None, child):
                out.append(f"{prefix}{key}:{rnd.choice(COMMENTS)}")
                out.extend(child)
            elif rnd.random() < 0.2:
                out.append(f"{prefix}{key}:{rnd.choice(COMMENTS)}")
            else:
                out.append(f"{prefix}{key}:{' ' * rnd.choice([1, 1, 2])}{rnd.choice(LINE_SCALARS)}"
                           f"{rnd.choice(COMMENTS)}")
        else:
            dash = "-" + " " * rnd.choice([1, 1, 3])
            child = []
            compact_col = len(prefix) + len(dash)
            if rnd.random() < 0.5 and block_lines(rnd, depth + 1, compact_col, prefix + dash, child):
                out.extend(child)
            elif rnd.random() < 0.2:
                out.append(f"{prefix}-{rnd.choice(COMMENTS)}")
                if block_lines(rnd, depth + 1, len(prefix) + rnd.choice([0, 1, 2, 4]), None, child):
                    out.extend(child)
            else:
                out.append(f"{prefix}{dash}{rnd.choice(LINE_SCALARS)}{rnd.choice(COMMENTS)}")
        if rnd.random() < 0.1:
            out.append(rnd.choice(["", "# note", "     # deep note"]))
    return True


@settings(max_examples=1000, deadline=None)
@given(rnd=st.randoms(use_true_random=False), indent=st.sampled_from([0, 0, 2]))
def test_hand_written_block_documents_load_as_pyyaml_loads_them(rnd: Any, indent: int) -> None:
    lines: list[str] = []
    block_lines(rnd, 0, indent, None, lines)
    text = "\n".join(lines) + "\n"
    assert_matches(text)
    fast = kubeyaml.fast_load(text)
    if fast is not kubeyaml.FALLBACK:  # the pure-Python loader agrees too (PyYAML without libyaml)
        assert same(fast, yaml.load(text, Loader=yaml.SafeLoader))


NUMERIC_ALPHABET = "0123456789-+_.:eExXbBoOiInNfFaAtTZz "


@settings(max_examples=1000, deadline=None)
@given(value=st.text(NUMERIC_ALPHABET, min_size=1, max_size=14))
def test_number_like_plain_scalars_resolve_as_pyyaml_resolves_them(value: str) -> None:
    assert_matches(f"k: {value}\n")
    assert_matches(f"{value}: v\n")
    assert_matches(f"- {value}\n")
