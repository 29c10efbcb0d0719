"""Seed 002's two example createSignals signals, shared by the client- and sandbox-side tests."""

from __future__ import annotations

# Seed 002's two example signals (the e-mail address is obfuscated in the seed; any address works).
SEED_ADD_TO_CART = {
    "appKey": "00000000000xxx000000000xxxx",
    "identifiableAttributes": {"contactKey": "AAUN-132417508"},
    "sessionId": "OOII97671461464332a1111",
    "signalContent": {
        "signalType": "addToCart",
        "name": "Add product to cart in online store",
        "category": "Behavior",
        "currency": "USD",
        "productId": "AC-PNT-WHT-SM",
        "productName": "AWESOME COLORS Interior Paint Satin Finish 32 Fl Oz",
        "effect": "positive",
        "itemQuantity": 2,
        "unitPrice": 39.99,
        "discount": 7,
        "productCategory": "Painting & Decorating / Paint",
        "productUrls": [
            "https://www.example.com/painting-and-decorating/paint/awesome-colors-interior-satin-paint",
            "https://www.example.com/painting-and-decorating/must-haves/awesome-colors-interior-satin-paint",
        ],
    },
}
SEED_PAGE_VIEW = {
    "appKey": "00000000000xxx000000000xxxx",
    "identifiableAttributes": {"email": "someone@example.com"},
    "sessionId": "OOII97671461464332a1112",
    "signalContent": {
        "signalType": "pageView",
        "name": "Sample product view",
        "category": "Behavior",
        "effect": "positive",
        "url": "https://example.com/shoes/sandal-beige",
        "pageCategory": "Shoes",
    },
}
