"""Fixed reference data of the simulated Hong Kong retailer.

Districts, store sites, the product catalogue template, names, holidays and
the strings the web tracker uses. Nothing here is random: the world builder
(``world.py``) draws from these lists with the seeded generator.
"""

from __future__ import annotations

from datetime import date, timedelta, timezone

HKT = timezone(timedelta(hours=8), "HKT")  # Asia/Hong_Kong: UTC+8, no DST
RETAILER = "Harbour Beauty"
SITE = "https://www.harbourbeauty.hk"

# The 18 districts: (name, region, population in 10,000s) for where people live.
DISTRICTS: list[tuple[str, str, int]] = [
    ("Central and Western", "HK Island", 23),
    ("Wan Chai", "HK Island", 17),
    ("Eastern", "HK Island", 53),
    ("Southern", "HK Island", 26),
    ("Yau Tsim Mong", "Kowloon", 31),
    ("Sham Shui Po", "Kowloon", 43),
    ("Kowloon City", "Kowloon", 41),
    ("Wong Tai Sin", "Kowloon", 41),
    ("Kwun Tong", "Kowloon", 67),
    ("Kwai Tsing", "New Territories", 49),
    ("Tsuen Wan", "New Territories", 32),
    ("Tuen Mun", "New Territories", 51),
    ("Yuen Long", "New Territories", 67),
    ("North", "New Territories", 31),
    ("Tai Po", "New Territories", 31),
    ("Sha Tin", "New Territories", 69),
    ("Sai Kung", "New Territories", 49),
    ("Islands", "New Territories", 19),
]
DISTRICT_NAMES = [d[0] for d in DISTRICTS]
DISTRICT_INDEX = {name: i for i, name in enumerate(DISTRICT_NAMES)}

# Store sites in the order stores are opened: (code, name, district, opening hour, closing hour,
# size factor). The first ten cover all three regions. Names may hold commas and apostrophes
# on purpose: the store master is a quoted CSV.
STORE_SITES: list[tuple[str, str, str, int, int, float]] = [
    ("TST01", "Tsim Sha Tsui, Canton Road", "Yau Tsim Mong", 10, 23, 1.5),
    ("MK01", "Mong Kok Sai Yeung Choi Street", "Yau Tsim Mong", 10, 23, 1.4),
    ("CWB01", "Causeway Bay, Hennessy Road", "Wan Chai", 10, 22, 1.4),
    ("ST01", "Sha Tin Centre Street", "Sha Tin", 10, 22, 1.2),
    ("CEN01", "Central, Queen's Road Central", "Central and Western", 8, 21, 1.0),
    ("KT01", "Kwun Tong Road", "Kwun Tong", 10, 22, 1.1),
    ("TW01", "Tsuen Wan Sha Tsui Road", "Tsuen Wan", 10, 22, 0.9),
    ("YL01", "Yuen Long Castle Peak Road", "Yuen Long", 10, 22, 1.0),
    ("TKO01", "Tseung Kwan O Chong Yip Street", "Sai Kung", 11, 22, 0.8),
    ("NP01", "North Point King's Road", "Eastern", 10, 21, 0.8),
    ("SSP01", "Sham Shui Po Apliu Street", "Sham Shui Po", 10, 21, 0.8),
    ("TM01", "Tuen Mun Town Centre", "Tuen Mun", 10, 22, 0.9),
    ("TP01", "Tai Po On Fu Road", "Tai Po", 10, 21, 0.7),
    ("KLC01", "Kowloon City Nga Tsin Wai Road", "Kowloon City", 10, 21, 0.7),
    ("WTS01", "Wong Tai Sin Lung Cheung Road", "Wong Tai Sin", 10, 21, 0.7),
    ("ABD01", "Aberdeen Main Road", "Southern", 10, 21, 0.6),
    ("KWC01", "Kwai Chung Kwai Fong", "Kwai Tsing", 10, 22, 0.8),
    ("SS01", "Sheung Shui San Hong Street", "North", 10, 22, 0.8),
    ("TC01", "Tung Chung Citygate", "Islands", 10, 22, 0.7),
]

# Till behaviour by position in STORE_SITES: older tills (MK01, TW01, ...) write UTF-8 with a
# BOM and CRLF and quote every field; others (CWB01, YL01, ...) upload their export gzipped.
LEGACY_TILL_STORES = {1, 6, 11, 16}
GZIP_TILL_STORES = {2, 7, 12, 17}

POS_PAYMENT = ["cash", "octopus", "visa", "mastercard", "unionpay", "alipayhk", "wechatpay", "fps"]
POS_PAYMENT_WEIGHTS = [0.14, 0.24, 0.2, 0.12, 0.05, 0.1, 0.07, 0.08]
SHOP_PAYMENT = ["visa", "mastercard", "amex", "alipayhk", "wechatpay", "fps", "payme"]
SHOP_PAYMENT_WEIGHTS = [0.32, 0.18, 0.05, 0.15, 0.08, 0.12, 0.1]

# Catalogue: category -> (sku prefix, [(subcategory, low price, high price, nouns)]).
CATEGORIES: dict[str, tuple[str, list[tuple[str, int, int, list[str]]]]] = {
    "Skincare": (
        "SKN",
        [
            (
                "Cleansers",
                69,
                260,
                ["Foaming Cleanser", "Cleansing Oil", "Micellar Water", "Gel Wash"],
            ),
            (
                "Serums",
                180,
                780,
                ["Hydra Serum", "Vitamin C Serum", "Repair Essence", "Night Ampoule"],
            ),
            ("Moisturisers", 120, 560, ["Day Cream", "Water Gel", "Night Cream", "Eye Cream"]),
            ("Sunscreen", 89, 290, ["Sun Fluid SPF50+", "UV Milk SPF50", "Tinted Sunscreen"]),
            ("Masks", 39, 199, ["Sheet Mask, 5 pcs", "Clay Mask", "Sleeping Mask"]),
        ],
    ),
    "Makeup": (
        "MKP",
        [
            (
                "Face",
                150,
                480,
                ["Cushion Foundation", "Liquid Foundation", "Setting Powder", "Blush"],
            ),
            ("Eyes", 90, 360, ["Mascara", "Eyeliner Pen", "Eyeshadow Palette", "Brow Pencil"]),
            ("Lips", 89, 329, ["Lip Tint", "Matte Lipstick", "Lip Balm", "Lip Gloss"]),
            ("Nails", 49, 159, ["Nail Colour", "Top Coat", "Nail Remover"]),
        ],
    ),
    "Fragrance": (
        "FRG",
        [
            ("Women's Fragrance", 420, 1280, ["Eau de Parfum 50ml", "Eau de Toilette 30ml"]),
            ("Men's Fragrance", 390, 1150, ["Eau de Toilette 100ml", "Cologne 50ml"]),
            ("Home Fragrance", 180, 520, ["Reed Diffuser", "Scented Candle"]),
        ],
    ),
    "Hair Care": (
        "HAR",
        [
            ("Shampoo", 49, 189, ["Scalp Shampoo", "Repair Shampoo", "Volume Shampoo"]),
            ("Conditioner", 49, 189, ["Smooth Conditioner", "Repair Conditioner"]),
            ("Treatment", 99, 320, ["Hair Mask", "Hair Oil", "Scalp Serum"]),
            ("Styling", 69, 210, ["Styling Wax", "Hair Spray", "Curl Cream"]),
        ],
    ),
    "Body Care": (
        "BOD",
        [
            ("Body Wash", 39, 149, ["Shower Gel", "Body Scrub", "Bath Salts"]),
            ("Body Lotion", 59, 229, ["Body Lotion", "Body Butter", "Body Oil"]),
            ("Hand Care", 35, 139, ["Hand Cream", "Hand Sanitiser, 3 pack"]),
        ],
    ),
    "Health & Wellness": (
        "HLT",
        [
            ("Vitamins", 98, 420, ["Multivitamin, 60 tablets", "Vitamin C 1000mg", "Vitamin D3"]),
            ("Supplements", 158, 680, ["Fish Oil Omega-3", "Collagen Drink", "Probiotics"]),
            ("Herbal", 128, 560, ["Ginseng Essence", "Lingzhi Capsules", "Bird's Nest Drink"]),
            ("First Aid", 25, 120, ["Plasters, 40 pcs", "Medicated Oil", "Thermometer"]),
        ],
    ),
    "Baby & Mum": (
        "BBY",
        [
            ("Diapers", 89, 179, ["Diapers M, 64 pcs", "Diapers L, 54 pcs", "Pull-Ups XL"]),
            ("Formula", 210, 340, ["Infant Formula Stage 1", "Follow-on Formula Stage 2"]),
            ("Baby Skincare", 59, 199, ["Baby Lotion", "Baby Wash", "Nappy Cream"]),
            ("Mum Care", 99, 299, ["Stretch Mark Oil", "Nursing Pads"]),
        ],
    ),
    "Men's Grooming": (
        "MEN",
        [
            ("Shaving", 29, 259, ["Razor Cartridges, 4 pcs", "Shaving Foam", "Aftershave Balm"]),
            (
                "Men's Skincare",
                89,
                380,
                ["Oil Control Wash", "All-in-One Gel", "Men's Moisturiser"],
            ),
            ("Men's Hair", 59, 199, ["Matte Clay", "Anti-Dandruff Shampoo"]),
        ],
    ),
}
CATEGORY_NAMES = list(CATEGORIES)

BRANDS: dict[str, list[str]] = {
    "Skincare": ["Aquavera", "Lumiere Bay", "Hanami", "DermaLab", "Jade Garden", "Purelle"],
    "Makeup": ["Hanami", "Solenne", "Rouge Harbour", "Petal & Co"],
    "Fragrance": ["Solenne", "Maison Kowloon", "Nordika"],
    "Hair Care": ["Verdant", "Silkwave", "Bamboo Leaf"],
    "Body Care": ["Verdant", "Orchid & Co", "Marina"],
    "Health & Wellness": ["Vitalis", "Herbalux", "Peak Health", "Grove"],
    "Baby & Mum": ["BabySoft", "Little Panda", "MamaCare"],
    "Men's Grooming": ["Atlas Men", "Nordika", "Peak Men"],
}

# Shopper archetypes as category weights (order of CATEGORY_NAMES). Individual affinities are
# drawn around one archetype, so categories of an archetype are bought together (skincare with
# makeup, baby with body care): the cross-selling signal.
ARCHETYPES: list[tuple[str, float, list[float]]] = [
    ("beauty", 0.34, [0.36, 0.30, 0.10, 0.07, 0.08, 0.04, 0.02, 0.03]),
    ("wellness", 0.2, [0.10, 0.03, 0.03, 0.08, 0.14, 0.50, 0.04, 0.08]),
    ("family", 0.16, [0.10, 0.04, 0.02, 0.10, 0.18, 0.14, 0.40, 0.02]),
    ("grooming", 0.14, [0.06, 0.02, 0.14, 0.16, 0.08, 0.08, 0.02, 0.44]),
    ("all-round", 0.16, [0.18, 0.12, 0.08, 0.16, 0.16, 0.14, 0.06, 0.10]),
]

SURNAMES = [
    "Chan", "Wong", "Lee", "Cheung", "Lau", "Ng", "Ho", "Leung", "Lam", "Tsang", "Yip", "Tang",
    "Chow", "Fung", "Kwok", "Lai", "Mak", "Poon", "Siu", "Tam", "Yeung", "Cheng", "Kwan", "Lo",
    "Choi", "Law", "Chu", "Ma", "Hui", "Tse", "Au", "Yuen", "Ip", "Sze", "Ko", "Li",
]  # fmt: skip
GIVEN_NAMES = [
    "Tai Man", "Mei Ling", "Ka Yan", "Wing Sze", "Chi Keung", "Siu Ming", "Hoi Yan", "Ka Ho",
    "Wai Kit", "Pui Shan", "Man Yee", "Yuk Lan", "Kin Wai", "Sze Wing", "Ho Yin", "Tsz Ching",
    "Chun Kit", "Lok Yi", "Hiu Tung", "Wing Yan", "Kwok Wai", "Suet Ying", "Chi Ho", "Oi Ling",
]  # fmt: skip
ENGLISH_NAMES = [
    "Karen", "Mandy", "Winnie", "Kelvin", "Ivan", "Jason", "Peggy", "Gigi", "Carmen", "Ada",
    "Eric", "Kenneth", "Vincent", "Joyce", "Tiffany", "Cathy", "Sammi", "Tony", "Raymond",
    "Alan", "Michelle", "Candy", "Fiona", "Yoyo", "Ken", "Terry", "Janice", "Cherry", "Queenie",
    "Jacky", "Samuel", "Wendy", "Agnes", "Derek", "Heidi", "Matthew", "Priscilla", "Zoe",
]  # fmt: skip
EMAIL_DOMAINS = [
    "gmail.com",
    "yahoo.com.hk",
    "hotmail.com",
    "outlook.com",
    "netvigator.com",
    "icloud.com",
]
EMAIL_DOMAIN_WEIGHTS = [0.45, 0.17, 0.14, 0.1, 0.07, 0.07]

# Identifiers people type into forms and tills when they do not want to give theirs. They
# belong to nobody and are never listed in the ground truth.
JUNK_PHONES = ["00000000", "12345678", "99999999"]
JUNK_EMAILS = ["test@example.com", "na@na.com", "no@email.com"]
JUNK_CARD = "0000000000"
UNKNOWN_SKUS = [("GWP-TOTE", 0), ("LEGACY-4471", 5990), ("MISC-ITEM", 1000)]  # (sku, cents)

DEVICES = ["desktop", "mobile", "tablet"]
USER_AGENTS = {
    "desktop": [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
    ],
    "mobile": [
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 WeChat/8.0.49",
    ],
    "tablet": [
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    ],
}
# (utm_source, utm_medium, referrer) of a campaign visit; the campaign name depends on the date.
CAMPAIGN_SOURCES = [
    ("facebook", "paid_social", "https://www.facebook.com/"),
    ("instagram", "paid_social", "https://www.instagram.com/"),
    ("google", "cpc", "https://www.google.com.hk/"),
    ("newsletter", "email", ""),
]
ORGANIC_REFERRERS = [
    "",
    "",
    "https://www.google.com.hk/",
    "https://www.google.com/",
    "https://www.openrice.com/",
]
SEARCH_TERMS = [
    "sunscreen", "serum", "vitamin c", "lip tint", "shampoo", "diapers", "formula", "fish oil",
    "hand cream", "mask", "perfume", "razor", "collagen", "cushion", "eye cream", "gift set",
]  # fmt: skip

COMPLAINT_TEAMS = {
    "delivery": "Logistics",
    "product_quality": "Quality Assurance",
    "staff_service": "Store Operations",
    "billing": "Finance Support",
    "returns": "Customer Care",
    "website": "Digital",
    "privacy": "Privacy Office",
    "other": "Customer Care",
}

# First day of the Lunar New Year (HK public holiday), from the Hong Kong Observatory calendar.
LUNAR_NEW_YEAR = {
    2020: date(2020, 1, 25),
    2021: date(2021, 2, 12),
    2022: date(2022, 2, 1),
    2023: date(2023, 1, 22),
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
    2031: date(2031, 1, 23),
    2032: date(2032, 2, 11),
    2033: date(2033, 1, 31),
    2034: date(2034, 2, 19),
    2035: date(2035, 2, 8),
}
