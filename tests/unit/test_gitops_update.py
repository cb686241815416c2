"""Writing a promoted digest into GitOps YAML: golden files, then the refusals.

Each directory under tests/data/gitops holds original.yaml, expected.yaml and change.json (the
target, and what differs from the default change). Files are read as bytes: a byte-for-byte
promise cannot be checked through universal-newline decoding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.gitops import (
    AmbiguousTargetError,
    HelmValue,
    ImageChange,
    InvalidChangeError,
    InvalidTargetError,
    InvalidYamlError,
    KustomizeImage,
    ManifestContainer,
    RoundTripError,
    StructureError,
    Target,
    TargetNotFoundError,
    UpdateError,
    update_yaml,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "gitops"
REPO = "registry.example.com:5000/team/app"
DIGEST = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
CHANGE = ImageChange(REPO, DIGEST, "1.4.2")
CASES = sorted(p.name for p in DATA.iterdir() if p.is_dir())
_TARGETS: dict[str, type] = {"helm": HelmValue, "kustomize": KustomizeImage, "manifest": ManifestContainer}


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def _case(name: str) -> tuple[str, str, Target, ImageChange]:
    spec: dict[str, Any] = json.loads(_read(DATA / name / "change.json"))
    target_spec = dict(spec["target"])
    target = _TARGETS[target_spec.pop("type")](**target_spec)
    change = ImageChange(**{"repository": REPO, "digest": DIGEST, "tag": "1.4.2", **spec.get("change", {})})
    return _read(DATA / name / "original.yaml"), _read(DATA / name / "expected.yaml"), target, change


def _update(text: str, target: Target, change: ImageChange = CHANGE) -> str:
    return update_yaml(text, target, change, source="env/prod/file.yaml").text


def test_every_kind_has_golden_cases() -> None:
    kinds = {name.split("_", 1)[0] for name in CASES}
    assert kinds == {"helm", "kustomize", "manifest"}, CASES


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    original, expected, target, change = _case(name)
    result = update_yaml(original, target, change, source=f"{name}/original.yaml")
    assert result.text == expected
    assert result.changed and result.text != original
    again = update_yaml(result.text, target, change, source=f"{name}/expected.yaml")
    assert not again.changed and again.text == result.text, "a second application is a no-op"
    assert again.old_value == result.new_value == again.new_value


@pytest.mark.parametrize("name", CASES)
def test_golden_comments_and_blank_lines_are_all_kept(name: str) -> None:
    """Guards the golden files themselves: no comment, blank line or marker lost or reordered."""
    original, expected, _, _ = _case(name)

    def decoration(text: str) -> list[str]:
        return [
            line
            for line in text.splitlines()
            if not line.strip() or line.lstrip().startswith("#") or line in ("---", "...")
        ]

    assert decoration(expected) == decoration(original)


# ----------------------------------------------------------------------------- what is written


@pytest.mark.parametrize(
    ("path", "written"),
    [
        ("image.digest", DIGEST),
        ("image.imageDigest", DIGEST),
        ("image.tag", "1.4.2"),
        ("app.image.repository", REPO),
        ("image", f"{REPO}:1.4.2@{DIGEST}"),
        ("app.image.name", f"{REPO}:1.4.2@{DIGEST}"),
    ],
)
def test_helm_rule_by_last_key(path: str, written: str) -> None:
    result = update_yaml("a: 1\n", HelmValue(path), CHANGE)
    assert result.new_value == written
    assert written in result.text


def test_helm_field_overrides_the_rule() -> None:
    result = update_yaml("image:\n  ref: x\n", HelmValue("image.ref", field="digest"), CHANGE)
    assert result.text == f"image:\n  ref: {DIGEST}\n" and result.old_value == "x"


def test_reference_without_tag() -> None:
    change = ImageChange(REPO, DIGEST)
    assert update_yaml("image: x\n", HelmValue("image"), change).text == f"image: {REPO}@{DIGEST}\n"


def test_quoting_style_of_the_replaced_value_is_kept() -> None:
    text = "a:\n  tag: 'v1'\nb:\n  tag: \"v1\"\nc:\n  tag: v1\n"
    out = text
    for key in "abc":
        out = _update(out, HelmValue(f"{key}.tag"))
    assert out == "a:\n  tag: '1.4.2'\nb:\n  tag: \"1.4.2\"\nc:\n  tag: 1.4.2\n"


@pytest.mark.parametrize("tag", ["1.0", "10", "yes", "on", "null", "2024-01-01", "1e3"])
def test_plain_value_that_would_not_read_as_a_string_is_quoted(tag: str) -> None:
    out = _update("image:\n  tag: v1  # keep\n", HelmValue("image.tag"), ImageChange(REPO, DIGEST, tag))
    assert out == f'image:\n  tag: "{tag}"  # keep\n'


def test_non_string_scalars_are_overwritten() -> None:
    out = _update("image:\n  tag: 1.0\n  digest: null\n", HelmValue("image.tag"), ImageChange(REPO, DIGEST, "1.1"))
    assert out == 'image:\n  tag: "1.1"\n  digest: null\n'


def test_empty_value_gets_one_space_and_keeps_its_comment() -> None:
    assert _update("image:\n  digest:  # later\n  tag: v1\n", HelmValue("image.digest")) == (
        f"image:\n  digest: {DIGEST}  # later\n  tag: v1\n"
    )
    assert _update("image:\n  digest:\n", HelmValue("image.digest")) == f"image:\n  digest: {DIGEST}\n"


def test_anchor_on_the_value_is_kept_and_aliases_follow() -> None:
    text = "image:\n  tag: &tag v1\nworker:\n  tag: *tag\n"
    assert _update(text, HelmValue("image.tag")) == "image:\n  tag: &tag 1.4.2\nworker:\n  tag: *tag\n"


def test_explicit_tag_on_the_value_is_kept() -> None:
    assert _update("image:\n  tag: !!str v1\n", HelmValue("image.tag")) == "image:\n  tag: !!str 1.4.2\n"


def test_crlf_file_replaced_in_place() -> None:
    text = 'image:\r\n  tag: v1\r\n  digest: ""\r\n'
    assert _update(text, HelmValue("image.digest")) == f'image:\r\n  tag: v1\r\n  digest: "{DIGEST}"\r\n'


def test_byte_order_mark_is_kept() -> None:
    assert _update("\ufeffimage:\n  tag: v1\n", HelmValue("image.tag")) == "\ufeffimage:\n  tag: 1.4.2\n"


def test_missing_final_newline_is_kept_in_place_and_when_creating() -> None:
    assert _update("image:\n  tag: v1", HelmValue("image.tag")) == "image:\n  tag: 1.4.2"
    assert _update("image:\n  tag: v1", HelmValue("image.digest")) == f"image:\n  tag: v1\n  digest: {DIGEST}"


def test_unchanged_returns_the_same_text() -> None:
    text = f"image:\n  digest:   {DIGEST}   # ok\n"
    result = update_yaml(text, HelmValue("image.digest"), CHANGE)
    assert not result.changed and result.text is text and result.old_value == DIGEST


def test_kustomize_with_tag_sets_newtag_and_digest() -> None:
    text = f"images:\n- name: {REPO}\n  digest: sha256:{'1' * 64}\n"
    result = update_yaml(text, KustomizeImage(), CHANGE)
    assert result.text == f"images:\n- name: {REPO}\n  digest: {DIGEST}\n  newTag: 1.4.2\n"
    assert result.old_value == f"{REPO}@sha256:{'1' * 64}"
    assert result.new_value == f"{REPO}:1.4.2@{DIGEST}"


def test_kustomize_newname_equal_to_repository_is_left_alone() -> None:
    text = f"images:\n- name: app\n  newName: {REPO}\n  newTag: 1.4.2\n  digest: {DIGEST}\n"
    assert not update_yaml(text, KustomizeImage("app"), CHANGE).changed


def test_kustomize_stale_newname_is_corrected() -> None:
    text = f"images:\n- name: {REPO}\n  newName: old/app\n  newTag: 1.4.2\n  digest: {DIGEST}\n"
    assert _update(text, KustomizeImage()) == text.replace("old/app", REPO)


def test_manifest_with_kind_and_name_picks_one_of_several() -> None:
    docs = "\n---\n".join(
        f"kind: Deployment\nmetadata:\n  name: {n}\nspec:\n  template:\n    spec:\n"
        f"      containers:\n      - name: app\n        image: x:1\n"
        for n in ("a", "b")
    )
    out = _update(docs, ManifestContainer("app", kind="Deployment", name="b"))
    assert out.count("image: x:1") == 1 and out.endswith(f"image: {REPO}:1.4.2@{DIGEST}\n")


_ENTRY = f"- name: {REPO}\n  newTag: 1.4.2\n  digest: {DIGEST}\n"


@pytest.mark.parametrize(("mapping", "dash"), [(2, 0), (2, 2), (4, 0), (4, 4)])
def test_new_entries_follow_the_files_indentation(mapping: int, dash: int) -> None:
    """Two- and four-space files, with ``- `` under the key or indented: new lines match."""
    pad, item = " " * mapping, " " * dash

    def block(entry: str) -> str:
        return "".join(f"{item}{line}\n" for line in entry.splitlines())

    text = (
        f"metadata:\n{pad}labels:\n{pad * 2}app: web\nresources:\n{item}- a.yaml\n"
        f"images:\n{item}- name: proxy\n{item}  newTag: 2.0.0\n"
    )
    assert _update(text, KustomizeImage()) == text + block(_ENTRY)
    helm = f"app:\n{pad}image:\n{pad * 2}repository: x\n{pad}args:\n{pad}{item}- a\n"
    assert _update(helm, HelmValue("app.image.digest")) == helm.replace(
        "repository: x\n", f"repository: x\n{pad * 2}digest: {DIGEST}\n"
    )


@pytest.mark.parametrize("images", ["images:\n", "images: []\n", ""])
def test_kustomize_images_list_created_when_empty_or_missing(images: str) -> None:
    text = f"resources:\n- a.yaml\n{images}"
    assert _update(text, KustomizeImage()) == f"resources:\n- a.yaml\nimages:\n{_ENTRY}"


def test_created_keys_go_before_the_comments_that_end_the_block() -> None:
    text = "app:\n  image:\n    tag: v1  # eol\n\n# next section\nother: 1\n"
    assert _update(text, HelmValue("app.image.digest")) == (
        f"app:\n  image:\n    tag: v1  # eol\n    digest: {DIGEST}\n\n# next section\nother: 1\n"
    )


def test_deleted_newtag_keeps_the_comment_lines_below_it() -> None:
    text = f"images:\n- name: {REPO}\n  newTag: v1  # gone with it\n  # kept\n  digest: {DIGEST}\n"
    result = update_yaml(text, KustomizeImage(), ImageChange(REPO, DIGEST))
    assert result.text == f"images:\n- name: {REPO}\n  # kept\n  digest: {DIGEST}\n"


def test_merge_key_is_overridden_not_written_through() -> None:
    text = "defaults: &d\n  tag: v1\nimage:\n  <<: *d\n  repository: x\n"
    assert _update(text, HelmValue("image.tag")) == text + "  tag: 1.4.2\n"


def test_manifest_container_without_image_gets_one() -> None:
    text = "---\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    args: [x]\n"
    assert _update(text, ManifestContainer("a")) == text + f"    image: {REPO}:1.4.2@{DIGEST}\n"


# ----------------------------------------------------------------------------------- refusals


def _refused(
    error: type[UpdateError], text: str, target: Target, change: ImageChange = CHANGE, *fragments: str
) -> UpdateError:
    with pytest.raises(error) as caught:
        update_yaml(text, target, change, source="env/prod/file.yaml")
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert message.startswith("env/prod/file.yaml: "), message
    for fragment in fragments:
        assert fragment in message, message
    return caught.value


def test_invalid_yaml() -> None:
    _refused(
        InvalidYamlError,
        "image: [unclosed\n",
        HelmValue("image.tag"),
        CHANGE,
        "not valid YAML: expected ',' or ']', but got '<stream end>' (line 2, column 1)",
    )


def test_duplicate_keys_refused_when_ruamel_must_load_the_file() -> None:
    _refused(
        InvalidYamlError,
        "a: 1\na: 2\nimage:\n  tag: v1\n",
        HelmValue("image.digest"),
        CHANGE,
        'found duplicate key "a"',
    )


def test_helm_refuses_to_descend_into_a_scalar() -> None:
    error = _refused(
        StructureError,
        "app:\n  image: x:1\n",
        HelmValue("app.image.tag"),
        CHANGE,
        "app.image: is the string 'x:1', not a mapping, so app.image.tag cannot",
    )
    assert error.path == "app.image"


def test_helm_refuses_to_descend_into_a_list() -> None:
    _refused(StructureError, "app:\n- a\n", HelmValue("app.image.tag"), CHANGE, "app: is a list")
    _refused(StructureError, "- a\n", HelmValue("image"), CHANGE, "<document root>: is a list")


def test_helm_whole_reference_into_a_mapping() -> None:
    _refused(StructureError, "image:\n  tag: v1\n", HelmValue("image"), CHANGE, "image: is a mapping, not a scalar")


def test_helm_absent_when_creation_is_not_allowed() -> None:
    error = _refused(
        TargetNotFoundError,
        "image:\n  tag: v1\n",
        HelmValue("image.digest", create=False),
        CHANGE,
        "image.digest: absent (only image exists)",
    )
    assert error.path == "image.digest"


def test_helm_tag_needs_a_tag() -> None:
    _refused(
        InvalidChangeError,
        "image:\n  tag: v1\n",
        HelmValue("image.tag"),
        ImageChange(REPO, DIGEST),
        "image.tag: the change has no tag",
    )


def test_helm_through_an_alias() -> None:
    text = "base: &base\n  tag: v1\nimage: *base\n"
    _refused(StructureError, text, HelmValue("image.tag"), CHANGE, "image: is an alias of &base")


def test_helm_block_scalar() -> None:
    _refused(StructureError, "image:\n  tag: |\n    v1\n", HelmValue("image.tag"), CHANGE, "block scalar")


def test_helm_values_must_be_one_document() -> None:
    _refused(StructureError, "a: 1\n---\nb: 2\n", HelmValue("image.tag"), CHANGE, "2 YAML documents")


def test_duplicate_key_on_the_path() -> None:
    _refused(
        AmbiguousTargetError,
        "image:\n  tag: a\n  tag: b\n",
        HelmValue("image.tag"),
        CHANGE,
        "'tag' appears 2 times (lines 2, 3)",
    )


def test_creating_in_a_file_ruamel_would_rewrite() -> None:
    text = "# before the marker\n---\nimage:\n  tag: v1\n"
    _refused(
        RoundTripError,
        text,
        HelmValue("image.digest"),
        CHANGE,
        "line 1: '# before the marker\\n' would become '---\\n'",
        "add the key by hand once",
    )


def test_creating_where_ruamel_would_move_a_comment() -> None:
    text = f"images:\n- newTag: v1\n  # about the name\n  name: {REPO}\n"
    _refused(
        RoundTripError,
        text,
        KustomizeImage(),
        ImageChange(REPO, DIGEST),
        "would move a comment, blank line or document marker near line 2",
    )


def test_creating_in_a_file_with_mixed_indentation() -> None:
    text = "a:\n  b: 1\nimage:\n    tag: v1\n"
    _refused(RoundTripError, text, HelmValue("image.digest"), CHANGE, "ruamel.yaml would also rewrite")


def test_kustomize_duplicate_entries() -> None:
    text = f"images:\n- name: {REPO}\n  newTag: a\n- name: {REPO}\n  newTag: b\n"
    _refused(AmbiguousTargetError, text, KustomizeImage(), CHANGE, "images[0] and images[1] both have name")


def test_kustomize_images_not_a_list() -> None:
    _refused(StructureError, "images:\n  app: x\n", KustomizeImage(), CHANGE, "images: is a mapping, not a list")


def test_kustomize_entry_not_a_mapping() -> None:
    _refused(StructureError, "images:\n- app\n", KustomizeImage(), CHANGE, "images[0]: is the string 'app'")


def test_kustomize_missing_entry_when_creation_is_not_allowed() -> None:
    _refused(
        TargetNotFoundError,
        "images:\n- name: other\n",
        KustomizeImage("app", create=False),
        CHANGE,
        "no entry with name 'app' (entries: other)",
    )


def test_kustomize_root_not_a_mapping() -> None:
    _refused(StructureError, "- a\n", KustomizeImage(), CHANGE, "a kustomization is a mapping")


_DEPLOYMENT = """\
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      initContainers:
      - name: migrate
        image: x:1
      containers:
      - name: app
        image: {image}
      - name: proxy
        image: y:2
"""


def test_manifest_no_such_container_lists_those_found() -> None:
    _refused(
        TargetNotFoundError,
        _DEPLOYMENT.format(image="x:1"),
        ManifestContainer("api"),
        CHANGE,
        "no container named 'api' (containers found: Deployment/web: initContainers migrate; containers app, proxy)",
    )


def test_manifest_no_such_resource_lists_those_found() -> None:
    _refused(
        TargetNotFoundError,
        _DEPLOYMENT.format(image="x:1"),
        ManifestContainer("app", kind="StatefulSet"),
        CHANGE,
        "no resource with kind=StatefulSet (resources: Deployment/web)",
    )


@pytest.mark.parametrize("image", ["42", "{name: x}", "[x]", "true"])
def test_manifest_non_string_image(image: str) -> None:
    _refused(
        StructureError,
        _DEPLOYMENT.format(image=image),
        ManifestContainer("app"),
        CHANGE,
        "Deployment/web spec.template.spec.containers[0].image: is",
    )


def test_manifest_container_in_several_resources() -> None:
    text = _DEPLOYMENT.format(image="x:1") + "---\n" + _DEPLOYMENT.format(image="x:1").replace("web", "api")
    _refused(
        AmbiguousTargetError,
        text,
        ManifestContainer("app"),
        CHANGE,
        "container 'app' is in Deployment/web, Deployment/api; set the target's kind and name",
    )


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"digest": "sha256:abc"}, "digest 'sha256:abc'"),
        ({"digest": "SHA256:" + "a" * 64}, "is not sha256"),
        ({"tag": "v1@sha256:" + "a" * 64}, "no @digest in it"),
        ({"tag": ""}, "is not an image tag"),
        ({"repository": f"{REPO}:1.4.2"}, "no tag or digest in it"),
        ({"repository": f"{REPO}@{DIGEST}"}, "no tag or digest in it"),
        ({"repository": ""}, "is not an image repository"),
    ],
)
def test_invalid_change(kwargs: dict[str, str], fragment: str) -> None:
    with pytest.raises(InvalidChangeError) as caught:
        ImageChange(**{"repository": REPO, "digest": DIGEST, "tag": "1.4.2", **kwargs})
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    "build",
    [
        lambda: HelmValue(""),
        lambda: HelmValue("image..tag"),
        lambda: HelmValue(
            "image.",
        ),
        lambda: HelmValue("image", field="sha"),  # type: ignore[arg-type]
        lambda: KustomizeImage(" "),
        lambda: ManifestContainer(""),
    ],
)
def test_invalid_target(build: Any) -> None:
    with pytest.raises(InvalidTargetError):
        build()
