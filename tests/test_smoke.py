from keyvault import services
from tests.factories import ProviderKeyFactory


def test_a_created_key_reveals_what_was_stored(organization):
    key = ProviderKeyFactory(organization=organization, secret="sk-proj-roundtrip-0123456789")
    assert services.provider_key_reveal(key=key) == "sk-proj-roundtrip-0123456789"
