{#-
    A Hong Kong phone number in E.164 form, '+852' followed by 8 digits.
    Spaces, dashes and parentheses are stripped; a leading '+852' or '852' is
    dropped when 8 digits follow. Anything else (foreign numbers, too short,
    letters, empty) gives null.
      '+852 9123 4567', '91234567', '9123-4567', '(852) 9123 4567' -> '+85291234567'
-#}
{% macro normalize_hk_phone(col) -%}
    case
        when regexp_replace({{ col }}, '[[:space:]()-]', '', 'g') ~ '^(\+?852)?[0-9]{8}$'
            then '+852' || right(regexp_replace({{ col }}, '[[:space:]()-]', '', 'g'), 8)
    end
{%- endmacro %}
