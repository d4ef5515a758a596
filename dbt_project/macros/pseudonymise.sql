{#-
    Keyed hash of a text expression: hex sha256 of '<secret>|<expr>'.
    The key is var('customer_key_secret') (env CRM_CUSTOMER_KEY_SECRET): without
    it a customer_key cannot be linked back to a person by hashing guesses.
    Uses the built-in sha256(bytea) of PostgreSQL 11+ (no pgcrypto needed).
    Note: the secret is inlined into the compiled SQL; treat target/ as secret.
-#}
{% macro pseudonymise(expr) -%}
    {%- set secret = var('customer_key_secret') -%}
    {%- if secret is none or (secret | string | trim) == '' -%}
        {{ exceptions.raise_compiler_error("var customer_key_secret is empty: set CRM_CUSTOMER_KEY_SECRET") }}
    {%- endif -%}
    encode(sha256(convert_to('{{ secret | string | replace("'", "''") }}' || '|' || ({{ expr }}), 'UTF8')), 'hex')
{%- endmacro %}
