"""The payer's languages: every word a payer's page shows, in Khmer and English.

The page opens in ``[display] language``; ``?lang=km`` or ``?lang=en`` switches it and is
remembered in the ``bk_lang`` cookie (a year, every payer page). Texts are looked up by key;
a key missing in one language is a bug the tests catch (both tables have the same keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["LANGUAGE_COOKIE", "LANGUAGES", "TEXTS", "language_of"]

LANGUAGE_COOKIE: Final = "bk_lang"
#: Code -> the language's own name (what the switch link says).
LANGUAGES: Final = {"km": "ខ្មែរ", "en": "English"}

TEXTS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "title": "Pay with KHQR",
        "pay_to": "Pay to",
        "amount": "Amount",
        "scan": "Scan the code with your bank app, or open it below, and confirm the amount.",
        "open_bank_app": "Open in my bank app",
        "expires_in": "Expires in",
        "waiting": "Waiting for your payment…",
        "i_have_paid": "I have paid",
        "checking": "Checking with the bank…",
        "wait_before_asking": "Already checking: please wait a few seconds before asking again.",
        "cancel": "Cancel payment",
        "paid_title": "Paid",
        "paid_text": "Payment received. Thank you!",
        "expired_title": "Expired",
        "expired_text": "This payment request has expired. Nothing was charged.",
        "cancelled_title": "Cancelled",
        "cancelled_text": "This payment was cancelled. Nothing was charged.",
        "failed_title": "Not completed",
        "failed_text": "The bank did not complete this payment.",
        "review_title": "Received, being checked",
        "review_text": "Your payment reached the shop, which is checking it. Keep your bank receipt.",
        "returning": "Returning to the shop…",
        "continue": "Continue",
        "not_found_title": "Payment link not found",
        "not_found_text": "This payment link is not valid. Ask the shop for a new one.",
        "ended_title": "Payment link ended",
        "ended_text": "This payment link has ended. Ask the shop if you need a new one.",
        "conflict_title": "Cannot do that now",
        "conflict_text": "This payment has already ended.",
        "rate_title": "Please wait",
        "error_title": "Something went wrong",
        "error_text": "The page could not be shown. Please try again in a moment.",
        "back": "Back to the payment",
        "sandbox": "SANDBOX: test payment, no real money",
        "display_welcome": "Welcome",
        "display_idle": "Your total shows here when the cashier is ready.",
        "display_scan": "Scan the code with your bank app and confirm the amount.",
        "display_thanks": "Thank you!",
        "pair_title": "Pair this display",
        "pair_text": "Type the pairing code shown on the cashier's console.",
        "pair_code": "Pairing code",
        "pair_button": "Pair",
        "display_not_found_title": "No such display",
        "display_not_found_text": "This address names no counter. Open the address the cashier's console shows.",
    },
    "km": {
        "title": "បង់ប្រាក់ជាមួយ KHQR",
        "pay_to": "បង់ទៅ",
        "amount": "ចំនួនទឹកប្រាក់",
        "scan": "ស្កេនកូដជាមួយកម្មវិធីធនាគាររបស់អ្នក ឬបើកវាខាងក្រោម ហើយបញ្ជាក់ចំនួនទឹកប្រាក់។",
        "open_bank_app": "បើកក្នុងកម្មវិធីធនាគារ",
        "expires_in": "ផុតកំណត់ក្នុង",
        "waiting": "កំពុងរង់ចាំការបង់ប្រាក់របស់អ្នក…",
        "i_have_paid": "ខ្ញុំបានបង់ប្រាក់រួចហើយ",
        "checking": "កំពុងពិនិត្យជាមួយធនាគារ…",
        "wait_before_asking": "កំពុងពិនិត្យរួចហើយ៖ សូមរង់ចាំពីរបីវិនាទី មុននឹងសួរម្ដងទៀត។",
        "cancel": "បោះបង់ការបង់ប្រាក់",
        "paid_title": "បានបង់ប្រាក់",
        "paid_text": "បានទទួលការបង់ប្រាក់។ សូមអរគុណ!",
        "expired_title": "ផុតកំណត់",
        "expired_text": "សំណើបង់ប្រាក់នេះបានផុតកំណត់ហើយ។ មិនមានការកាត់ប្រាក់ទេ។",
        "cancelled_title": "បានបោះបង់",
        "cancelled_text": "ការបង់ប្រាក់នេះត្រូវបានបោះបង់។ មិនមានការកាត់ប្រាក់ទេ។",
        "failed_title": "មិនបានបញ្ចប់",
        "failed_text": "ធនាគារមិនបានបញ្ចប់ការបង់ប្រាក់នេះទេ។",
        "review_title": "បានទទួល កំពុងពិនិត្យ",
        "review_text": "ការបង់ប្រាក់របស់អ្នកបានដល់ហាងហើយ ហាងកំពុងពិនិត្យ។ សូមរក្សាបង្កាន់ដៃធនាគាររបស់អ្នក។",
        "returning": "កំពុងត្រឡប់ទៅហាងវិញ…",
        "continue": "បន្ត",
        "not_found_title": "រកមិនឃើញតំណបង់ប្រាក់",
        "not_found_text": "តំណបង់ប្រាក់នេះមិនត្រឹមត្រូវទេ។ សូមសុំតំណថ្មីពីហាង។",
        "ended_title": "តំណបង់ប្រាក់បានបញ្ចប់",
        "ended_text": "តំណបង់ប្រាក់នេះបានបញ្ចប់ហើយ។ សូមសួរហាង ប្រសិនបើអ្នកត្រូវការតំណថ្មី។",
        "conflict_title": "មិនអាចធ្វើបានឥឡូវនេះ",
        "conflict_text": "ការបង់ប្រាក់នេះបានបញ្ចប់រួចហើយ។",
        "rate_title": "សូមរង់ចាំ",
        "error_title": "មានបញ្ហាកើតឡើង",
        "error_text": "មិនអាចបង្ហាញទំព័របានទេ។ សូមព្យាយាមម្ដងទៀតបន្តិចទៀត។",
        "back": "ត្រឡប់ទៅការបង់ប្រាក់",
        "sandbox": "SANDBOX៖ ការបង់ប្រាក់សាកល្បង មិនមែនប្រាក់ពិតទេ",
        "display_welcome": "សូមស្វាគមន៍",
        "display_idle": "ចំនួនទឹកប្រាក់ត្រូវបង់នឹងបង្ហាញនៅទីនេះ នៅពេលអ្នកគិតលុយរួចរាល់។",
        "display_scan": "ស្កេនកូដជាមួយកម្មវិធីធនាគាររបស់អ្នក ហើយបញ្ជាក់ចំនួនទឹកប្រាក់។",
        "display_thanks": "សូមអរគុណ!",
        "pair_title": "ភ្ជាប់អេក្រង់នេះ",
        "pair_text": "វាយលេខកូដភ្ជាប់ដែលបង្ហាញនៅលើកុងសូលរបស់អ្នកគិតលុយ។",
        "pair_code": "លេខកូដភ្ជាប់",
        "pair_button": "ភ្ជាប់",
        "display_not_found_title": "រកមិនឃើញអេក្រង់",
        "display_not_found_text": "អាសយដ្ឋាននេះមិនមែនជាបញ្ជរណាមួយទេ។ សូមបើកអាសយដ្ឋានដែលកុងសូលរបស់អ្នកគិតលុយបង្ហាញ។",
    },
}


def language_of(query: Mapping[str, str], cookies: Mapping[str, str], default: str) -> tuple[str, bool]:
    """The page's language and whether the payer just chose it (then the cookie is set):
    ``?lang=`` first, then the cookie, then ``default``; anything unknown is ignored."""
    asked = query.get("lang", "")
    if asked in LANGUAGES:
        return asked, True
    remembered = cookies.get(LANGUAGE_COOKIE, "")
    if remembered in LANGUAGES:
        return remembered, False
    return (default if default in LANGUAGES else "km"), False
