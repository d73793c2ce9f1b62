"""KHQRError and the NBC SDK's numeric error codes with their messages.

``KHQRError.code`` is exactly the ``errorCode`` the official JavaScript SDK (bakong-khqr 1.0.20)
returns for the same input, so callers and logs can be compared with the SDK's. The message is the
SDK's, sometimes followed by the detail that makes it clear (which field, what was found).
"""

from __future__ import annotations

from engine.errors import InvalidInput

__all__ = ["ERROR_MESSAGES", "KHQRError"]

#: The SDK's error codes and messages, verbatim.
ERROR_MESSAGES: dict[int, str] = {
    1: "Bakong Account ID cannot be null or empty",
    2: "Merchant name cannot be null or empty",
    3: "Bakong Account ID is invalid",
    4: "Amount is invalid",
    5: "Merchant type cannot be null or empty",
    6: "Bakong Account ID Length is Invalid",
    7: "Merchant Name Length is invalid",
    8: "KHQR provided is invalid",
    9: "Currency type cannot be null or empty",
    10: "Bill Name Length is invalid",
    11: "Store Label Length is invalid",
    12: "Terminal Label Length is invalid",
    13: "Cannot reach Bakong Open API service. Please check internet connection",
    14: "Source Info for Deep Link is invalid",
    15: "Internal server error",
    16: "Payload Format indicator Length is invalid",
    17: "Point of initiation Length is invalid",
    18: "Merchant code Length is invalid",
    19: "Transaction currency Length is invalid",
    20: "Country code Length is invalid",
    21: "Merchant city Length is invalid",
    22: "CRC Length is invalid",
    23: "Payload format indicator tag required",
    24: "CRC tag required",
    25: "Merchant category tag required",
    26: "Country Code cannot be null or empty",
    27: "Merchant City cannot be null or empty",
    28: "Unsupported currency",
    29: "Deep Link URL is not valid",
    30: "Merchant ID cannot be null or empty",
    31: "Acquiring Bank cannot be null or empty",
    32: "Merchant ID Length is invalid",
    33: "Acquiring Bank Length is invalid",
    34: "Mobile Number Length is invalid",
    35: "Account Information Length is invalid",
    36: "Tag is not in order",
    37: "Language Preference cannot be null or empty",
    38: "Language Preference Length is invalid",
    39: "Merchant Name Alternate Language cannot be null or empty",
    40: "Merchant Name Alternate Language Length is invalid",
    41: "Merchant City Alternate Language Length is invalid",
    42: "Purpose of Transaction Length is invalid",
    43: "Upi Account Information Length is invalid",
    44: "Upi Account Information Length does not accept USD",
    45: "Expiration timestamp is required for dynamic KHQR",
    46: "This dynamic KHQR has expired",
    47: "This dynamic KHQR has invalid field transaction amount",
    48: "Point of Initiation Method is invalid",
    49: "Expiration timestamp length is invalid",
    50: "Expiration timestamp is in the past",
    51: "Invalid merchant category code",
}


class KHQRError(InvalidInput):
    """A KHQR could not be generated, or a string is not a valid KHQR.

    ``code`` is the NBC SDK's numeric error code; ``sdk_message`` its message; ``message`` adds
    the detail when there is one (``"Amount is invalid: USD takes at most 2 decimals"``).
    """

    kind = "khqr-invalid"

    def __init__(self, code: int, detail: str = "", *, field: str | None = None) -> None:
        self.code = code
        self.sdk_message = ERROR_MESSAGES.get(code, "KHQR error")
        super().__init__(f"{self.sdk_message}: {detail}" if detail else self.sdk_message, field=field)

    def __repr__(self) -> str:
        return f"KHQRError(code={self.code}, message={self.message!r})"
