"""The links file, checked at start-up: what each entry builds, and one-line errors naming entry and field.

Unit level (no server): tests/test_links.py serves through the links against the real peers.
"""

import base64
import re
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from proxy.config import Config
from proxy.secrets.registry import MASK, SECRETS
from proxy.settings.errors import ConfigError
from proxy.storage.config import StorageConfig
from proxy.storage.errors import ObjectNotFound
from proxy.storage.links.config import LinksConfig, read_links
from proxy.storage.links.sources import LinkTable, parse_link_source
from tests.conftest import REPO
from tests.support.azurite import ACCOUNT_KEY, container_sas
from tests.support.fake_gcs import write_service_account
from tests.test_cli import cli_env, run_cli

SECRET = "links-secret-do-not-print-5e1d"
BASE = StorageConfig(provider="http", root=Path("/srv/data/storage"), connect_timeout=2.0, read_timeout=7.0,
                     retries=1, metadata_endpoint="http://127.0.0.1:1")


def load(tmp_path: Path, text: str) -> LinksConfig:
    path = tmp_path / "remote_links.yml"
    path.write_text(text)
    return read_links(path, True, BASE)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load(tmp_path, text)
    message = str(excinfo.value)
    assert "\n" not in message and message.startswith("REMOTE_LINKS_PATH="), message
    assert SECRET not in message and ACCOUNT_KEY not in message, message
    return message


def test_every_provider_of_the_design_example(tmp_path: Path) -> None:
    credentials = tmp_path / "gcs.json"
    fields = write_service_account(credentials)
    (tmp_path / "datasets").mkdir()
    config = load(tmp_path, f"""
my-car-datasets: {{provider: minio, endpoint: "127.0.0.1:9000", access_key: AK, secret_key: {SECRET},
                   region: eu-west-1, buckets: [cars_2020_20_10]}}
my-role: {{provider: minio, endpoint: "http://127.0.0.1:9001", iam_role: reader, buckets: [roles]}}
my-boats: {{provider: azure, endpoint: "http://127.0.0.1:10000/devstoreaccount1", access_key: devstoreaccount1,
            secret_key: "{ACCOUNT_KEY}", buckets: [boats]}}
my-planes: {{provider: google, credentials_path: {credentials}, buckets: [planes]}}
local-datasets: {{provider: fs, path: {tmp_path / "datasets"}}}
""")
    entries = {entry.name: entry for entry in config.entries}
    car = entries["my-car-datasets"]
    assert (car.provider, car.buckets, car.storage.provider) == ("minio", ("cars_2020_20_10",), "minio")
    assert (car.storage.endpoint, car.storage.region) == ("https://127.0.0.1:9000", "eu-west-1")
    assert (car.storage.access_key, car.storage.secret_key) == ("AK", SECRET)
    # Timeouts, retries and the metadata endpoint come from the STORAGE_* settings.
    assert (car.storage.connect_timeout, car.storage.read_timeout, car.storage.retries) == (2.0, 7.0, 1)
    role = entries["my-role"].storage
    assert (role.iam_role, role.access_key, role.metadata_endpoint) == ("reader", None, "http://127.0.0.1:1")
    assert entries["my-boats"].storage.provider == "azure"
    planes = entries["my-planes"].storage
    assert planes.endpoint == "https://storage.googleapis.com" and planes.credentials is not None
    local = entries["local-datasets"]
    assert (local.provider, local.buckets, local.storage.root) == ("fs", ("local-datasets",), tmp_path / "datasets")
    # Secrets are known for redaction, and never printed by `config`.
    assert SECRET in config.secrets() and fields["private_key"] in config.secrets()
    assert SECRET not in str(config.masked()) and fields["private_key"] not in str(config.masked())


@pytest.mark.parametrize(("entry", "field", "why"), [
    ("{provider: dropbox, buckets: [a]}", "provider", "expected one of minio, azure, google, fs"),
    ("{provider: minio, buckets: [a]}", "access_key", "unless iam_role"),
    ("{provider: minio, access_key: AK, buckets: [abc]}", "secret_key", "required when the other"),
    (f"{{provider: minio, secret_key: {SECRET}, buckets: [abc]}}", "access_key", "required when the other"),
    (f"{{provider: minio, access_key: AK, secret_key: {SECRET}}}", "buckets", "non-empty list"),
    (f"{{provider: minio, access_key: AK, secret_key: {SECRET}, buckets: []}}", "buckets", "non-empty list"),
    (f"{{provider: minio, access_key: AK, secret_key: {SECRET}, buckets: ['a/b']}}", "buckets", "bucket name"),
    (f"{{provider: minio, access_key: AK, secret_key: {SECRET}, buckets: [a], path: /x}}", "path",
     "not used by provider minio"),
    ("{provider: minio, access_key: AK, secret_key: 12345, buckets: [a]}", "secret_key", "expected a string"),
    (f"{{provider: minio, endpoint: 'ftp://h', access_key: AK, secret_key: {SECRET}, buckets: [a]}}",
     "endpoint", "expected host"),
    (f"{{provider: minio, endpoint: 'https://u:{SECRET}@h', access_key: AK, secret_key: x, buckets: [a]}}",
     "endpoint", "no user:password@"),
    (f"{{provider: azure, access_key: Bad_Account, secret_key: '{ACCOUNT_KEY}', buckets: [boats]}}",
     "access_key", "storage account name"),
    ("{provider: azure, access_key: devstoreaccount1, buckets: [boats]}", "secret_key", "required"),
    (f"{{provider: azure, access_key: devstoreaccount1, secret_key: '{SECRET}!', buckets: [boats]}}",
     "secret_key", "account key (base64) or a SAS token"),
    (f"{{provider: azure, access_key: devstoreaccount1, secret_key: '{ACCOUNT_KEY}', buckets: [Boats]}}",
     "buckets", "container name"),
    ("{provider: google, buckets: [planes]}", "credentials_path", "required"),
    ("{provider: google, credentials_path: /nonexistent/gcs.json, buckets: [planes]}", "credentials_path",
     "No such file"),
    ("{provider: fs, path: relative/dir}", "path", "absolute"),
    ("{provider: fs, path: /nonexistent/dir}", "path", "is not a folder"),
    ("{provider: fs, path: /tmp, buckets: [a]}", "buckets", "not used by provider fs"),
    ("[provider, minio]", "provider", "expected a mapping"),
], ids=lambda value: value if isinstance(value, str) and len(value) < 20 else None)
def test_each_error_names_the_entry_and_the_field(tmp_path: Path, entry: str, field: str, why: str) -> None:
    message = error_of(tmp_path, f"good: {{provider: fs, path: {tmp_path}}}\nbad-one: {entry}\n")
    assert f"entry 'bad-one': field '{field}'" in message, message
    assert why in message, message


# A SAS token pasted without `secret_key:` (YAML reads it as a field name with no value), as an
# entry's name or as a bucket, and a typo: the text of what is not a known name is never printed.
SAS_AS_FIELD = "sv=2022-11-02&ss=b&srt=co&sp=r&se=2030-01-01T00:00:00Z&sig=pastedSig9%2Bxy%2Fz%3D"


@pytest.mark.parametrize(("text", "expected"), [
    (f"bad2: {{provider: azure, access_key: devstoreaccount1, {SAS_AS_FIELD}, buckets: [boats]}}\n",
     "entry 'bad2': field #3 (its text not shown): unknown field"),
    (f"good: {{provider: minio, access_key: AK, secret_key: {SECRET}, buckets: [a], bukets: [b]}}\n",
     "entry 'good': field #5 (its text not shown; did you mean 'buckets'?): unknown field"),
    (f"'{SAS_AS_FIELD}': {{provider: fs, path: /tmp}}\n", "entry #1 (its name is not shown): field 'name'"),
    (f"dup: {{provider: fs, path: /tmp, {SAS_AS_FIELD}: 1, {SAS_AS_FIELD}: 2}}\n",
     "a name appears twice in one mapping"),
    (f"bad3: {{provider: minio, access_key: AK, secret_key: {SECRET}, buckets: [ok, '{SAS_AS_FIELD}']}}\n",
     "entry 'bad3': field 'buckets': item #2: expected a bucket name"),
], ids=["sas-as-field", "typo", "sas-as-entry-name", "sas-twice", "sas-as-bucket"])
def test_an_unknown_name_is_given_by_its_place_never_its_text(tmp_path: Path, text: str, expected: str) -> None:
    message = error_of(tmp_path, text)
    assert expected in message, message
    for piece in (SAS_AS_FIELD, "pastedSig9", "bukets"):
        assert piece not in message, message


def test_reading_the_file_registers_its_secrets_in_every_wire_form(tmp_path: Path) -> None:
    token = container_sas("boats").replace("sig=", "sig=b2Zm%2Bc2Vj%2Fcm%3D")  # a sig with +, / and =
    config = load(tmp_path, f"""
minio-one: {{provider: minio, endpoint: "127.0.0.1:9000", access_key: AK, secret_key: "{SECRET} x+y", buckets: [a]}}
azure-key: {{provider: azure, access_key: devstoreaccount1, secret_key: "{ACCOUNT_KEY}", buckets: [boats]}}
azure-sas: {{provider: azure, access_key: devstoreaccount1, secret_key: "?{token}", buckets: [boats2]}}
""")
    assert len(config.entries) == 3
    signature = token.split("sig=", 1)[1].split("&", 1)[0]
    raw_key = base64.b64decode(ACCOUNT_KEY)
    lowercase_hex = re.sub("%[0-9A-F]{2}", lambda escape: escape.group().lower(), signature)
    forms = [f"{SECRET}+x%2By", f"{SECRET}%20x+y", signature, lowercase_hex, unquote(signature),
             ACCOUNT_KEY.rstrip("="), base64.urlsafe_b64encode(raw_key).decode(),
             base64.urlsafe_b64encode(raw_key).decode().rstrip("="), quote(ACCOUNT_KEY, safe=""),
             quote(ACCOUNT_KEY, safe="").replace("%2F", "%2f"), raw_key.hex().upper()]
    for form in forms:
        line = f"GET /x.jpg?a=1&q={form}&z=2 failed"
        assert SECRETS.redact(line) == f"GET /x.jpg?a=1&q={MASK}&z=2 failed", form


def test_a_credential_file_that_is_not_a_service_account_is_named_not_quoted(tmp_path: Path) -> None:
    credentials = tmp_path / "gcs.json"
    credentials.write_text(f'{{"private_key": "{SECRET}"}}')
    message = error_of(tmp_path, f"planes: {{provider: google, credentials_path: {credentials}, buckets: [p1a]}}")
    assert "entry 'planes': field 'credentials_path'" in message and "client_email" in message, message


def test_a_bucket_listed_by_two_entries_of_one_provider_is_refused(tmp_path: Path) -> None:
    message = error_of(tmp_path, f"""
one: {{provider: minio, access_key: AK, secret_key: {SECRET}, buckets: [shared]}}
two: {{provider: minio, access_key: AK, secret_key: {SECRET}, buckets: [other, shared]}}
""")
    assert "entry 'two': field 'buckets': 'shared' is already listed by entry 'one'" in message, message


def test_an_entry_named_twice_is_refused_not_silently_replaced(tmp_path: Path) -> None:
    message = error_of(tmp_path, f"""
one: {{provider: fs, path: {tmp_path}}}
one: {{provider: fs, path: /}}
""")
    assert "'one' appears twice" in message and "line 3" in message, message


def test_a_yaml_syntax_error_gives_its_place_but_never_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, f"one: {{provider: minio, secret_key: {SECRET}: oops\n")
    assert "not valid YAML at line 1" in message, message


def test_the_default_file_may_be_absent_but_a_named_one_may_not(tmp_path: Path) -> None:
    config = LinksConfig.from_env({}, tmp_path, BASE)
    assert (config.path, config.entries) == (tmp_path / "remote_links.yml", ())
    with pytest.raises(ConfigError, match=r"REMOTE_LINKS_PATH=.*: no such file"):
        LinksConfig.from_env({"REMOTE_LINKS_PATH": str(tmp_path / "missing.yml")}, tmp_path, BASE)
    (tmp_path / "empty.yml").write_text("# no links yet\n")
    assert LinksConfig.from_env({"REMOTE_LINKS_PATH": str(tmp_path / "empty.yml")}, tmp_path, BASE).entries == ()


def test_link_sources_resolve_only_to_listed_buckets(tmp_path: Path) -> None:
    token = container_sas("boats")
    table = LinkTable(load(tmp_path, f"""
cars: {{provider: minio, access_key: AK, secret_key: {SECRET}, buckets: [cars]}}
boats: {{provider: azure, access_key: devstoreaccount1, secret_key: "?{token}", buckets: [boats]}}
local: {{provider: fs, path: {tmp_path}}}
"""))
    for source, entry in [("s3://cars/a.jpg", "cars"), ("minio://cars/a.jpg", "cars"),
                          ("azure://boats/dir/b.jpg", "boats"), ("fs://local/c.jpg", "local")]:
        link = parse_link_source(source)
        assert link is not None
        assert table.find(link.scheme, link.ref.bucket).name == entry
    assert parse_link_source("cars/a.jpg") is None  # a plain source of the main storage
    for source in ["s3://boats/a.jpg", "gs://cars/a.jpg", "s3://unlisted/a.jpg", "fs://cars/a.jpg",
                   "azure://cars/a.jpg"]:
        link = parse_link_source(source)
        assert link is not None
        with pytest.raises(ObjectNotFound):
            table.find(link.scheme, link.ref.bucket)
    with pytest.raises(ObjectNotFound, match="unknown link scheme"):
        parse_link_source("http://example.com/a.jpg")


def test_config_command_lists_links_with_keys_masked_and_refuses_a_bad_file(tmp_path: Path) -> None:
    links = tmp_path / "links.yml"
    links.write_text(f"cars: {{provider: minio, access_key: AK, secret_key: {SECRET}, buckets: [cars]}}\n")
    env = cli_env(tmp_path, REMOTE_LINKS_PATH=str(links))
    shown = run_cli(["config"], REPO, env)
    assert shown.returncode == 0, shown.stderr
    assert "link cars = minio" in shown.stdout and "secret_key=********" in shown.stdout
    assert SECRET not in shown.stdout + shown.stderr
    links.write_text(f"cars: {{provider: minio, access_key: AK, secret_kee: {SECRET}, buckets: [cars]}}\n")
    refused = run_cli(["config"], REPO, env)
    assert refused.returncode == 2
    assert "entry 'cars': field #3 (its text not shown; did you mean 'secret_key'?): unknown field" in refused.stderr
    assert "secret_kee:" not in refused.stderr
    assert SECRET not in refused.stdout + refused.stderr


def test_the_root_config_reads_the_links_file_from_data_path(tmp_path: Path) -> None:
    (tmp_path / "remote_links.yml").write_text(f"here: {{provider: fs, path: {tmp_path}}}\n")
    config = Config.from_env({"DATA_PATH": str(tmp_path)})
    assert config.links is not None and [entry.name for entry in config.links.entries] == ["here"]


# The links file and STORAGE_PROVIDER=azure take the same keys: one check, each naming its own field.
AZURE_KEYS = [
    ("account key", "devstoreaccount1", ACCOUNT_KEY),
    ("SAS token", "devstoreaccount1", "?sv=2022-11-02&sp=r&sig=c2lnbmF0dXJl"),
    ("key without padding", "devstoreaccount1", ACCOUNT_KEY.rstrip("=")),
    ("not base64", "devstoreaccount1", "key-with-dashes!"),
    ("spaces only", "devstoreaccount1", "   "),
    ("account with capitals", "DevStore", ACCOUNT_KEY),
    ("account too short", "ab", ACCOUNT_KEY),
]


@pytest.mark.parametrize(("account", "key"), [case[1:] for case in AZURE_KEYS], ids=[case[0] for case in AZURE_KEYS])
def test_links_file_and_environment_accept_the_same_azure_keys(tmp_path: Path, account: str, key: str) -> None:
    try:
        StorageConfig.from_env({"STORAGE_PROVIDER": "azure", "STORAGE_ACCESS_KEY": account,
                                "STORAGE_SECRET_KEY": key}, Path("/srv/data"))
        environment = None
    except ConfigError as error:
        environment = "account" if "STORAGE_ACCESS_KEY" in str(error) else "key"
    try:
        load(tmp_path, f"boats: {{provider: azure, access_key: '{account}', secret_key: '{key}', buckets: [boats]}}\n")
        links = None
    except ConfigError as error:
        links = "account" if "field 'access_key'" in str(error) else "key"
    assert environment == links
