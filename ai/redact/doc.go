// Package redact is the redaction and restoration engine of the AI privacy gateway (issue 16).
// Before a request goes to a generative model, Redact replaces in every string of it the values
// of the subjects the caller named, and the identifiers of people it did not name, with stable
// placeholders; afterwards a Restorer puts back the values the caller may read, in a whole answer
// or a streamed one, and Flags lists identifiers the model wrote itself.
//
// # Placeholders
//
// A subject's field becomes "[S<n>_<FIELD>]" (subject n counted from 1 in the order given, field
// name in upper case: "[S1_FULL_NAME]"). A field the caller may not read (Field.Opaque) gets one
// placeholder per distinct text they wrote that matched it, "[S1_NATIONAL_ID]" for the first
// form, then "[S1_NATIONAL_ID_2]", "[S1_NATIONAL_ID_3]", … (a number whose token another field
// of the subject has is passed over), each holding that text as its Value and never the stored
// value: restoring gives each form back as written, and the answer does not show that two
// spellings are one value. A detection becomes "[EMAIL_<k>]", "[PHONE_<k>]", "[IBAN_<k>]",
// "[CARD_<k>]" or "[ID_<k>]", numbered per kind in first-use order. One value (for an opaque
// field, one written form) keeps one placeholder for the life of the Redactor, across all the
// strings of a request; a detected value is recognized again in another format (phone and card
// by their digits, IBAN and IDs by their letters and digits, e-mail case-insensitively). Text
// already shaped like a placeholder is left alone by Redact, and a Restorer resolves only
// placeholders that replaced something before it was made: a caller who types "[S1_NOTES]", or
// a model that invents it, gets the token back as written, never the value behind it, and a
// token this Redactor never handed out ("[S9_X]", "[EMAIL_99]") is never restored either.
//
// # Matching a named subject's values
//
// Text and values are compared after the same normalization, and replaced in the original text:
// JSON string escapes decoded (`\u0644`, `\u0040`, a surrogate pair `\uD83D\uDE00` as one
// character, `\/`; a match covers the whole escapes, so JSON text stays valid; an invalid escape
// or one after an escaped backslash stays as written), compatibility decomposition (NFKD;
// full-width forms, ligatures), non-spacing marks dropped (Latin diacritics, so José matches
// Jose; Arabic harakat; the hamza and madda of أ إ آ ؤ ئ), case folding, the Latin letters NFKD
// keeps whole spelled in ASCII (ı i, ł l, ø o, đ ð d, ħ h, ŧ t, ŀ l, æ ae, œ oe, þ th, ß ss, ƀ b,
// ɨ i, ƶ z, ĸ q), Cyrillic and Greek letters that look like Latin ones as those (either case;
// Cyrillic а в е к м н о р с т у х і ѕ ј ԁ һ ӏ ԛ ԝ as a b e k m h o p c t y x i s j d h l q w;
// Greek α β ε ζ η ι κ μ ν ο ρ τ υ χ as a b e z h i k m n o p t y x), every dash (Unicode Pd: en and em
// dash, non-breaking hyphen, figure dash, …) and the minus sign as "-", Arabic-Indic and Extended
// Arabic-Indic digits as ASCII, ٱ → ا, ى and ی → ي, ک → ك, ة → ه, every format character
// (Unicode Cf: ZWNJ, ZWJ, zero-width space, word joiner, invisible operators, soft hyphen, BOM,
// bidi controls, tag characters, Mongolian vowel separator, …) and the tatweel removed, runs of
// white space as one space. Per field type:
//
//   - name: the whole value and each part of two letters or more, as whole words ("Ada" does not
//     match in "Adam"), with the parts written with or without spaces, hyphens or ZWNJ between
//     them ("عبد الله" = "عبدالله"), and in Arabic script also after the particles written joined
//     to a word (و ف ب ل ك, the article ال and their combinations: "ومحمد", "للخطيب" for
//     "الخطيب"). Names in Chinese, Japanese, Thai, Lao, Khmer and Myanmar
//     script need no word boundary, and a Chinese or Japanese name of three characters or more
//     also matches without its first character (the given name). Particles (de, la, van, von,
//     al, el, bin, ibn, abu, …) are not matched alone, only within the name or joined to a
//     neighbouring part. Another person sharing a first name is redacted too: over-redaction is
//     the accepted cost.
//   - phone: digits compared, any of " .-()/" between them. A number stored with + (or 00)
//     matches as +international, 00international, the national form with trunk 0 and the
//     national significant number alone (when it has six digits or more); the country code comes
//     from the E.164 calling code table. A number stored without + matches its digits as stored.
//     A "+" or an opening parenthesis just before the match goes with it.
//   - email: the whole address, case-insensitively.
//   - national_id: letters and digits only, case-insensitive, any of " .-/" between them
//     ("AB-947 381" = "ab947381"); values of fewer than four letters and digits are not matched.
//   - date (YYYY-MM-DD): numeric d/m/y, m/d/y and y-m-d with "/", "." or "-", with or without
//     leading zeros, four- or two-digit years (a two-digit year matches any century); and day
//     month year or month day, year with the month named in English, French, Spanish or Arabic
//     (both the يناير and the كانون الثاني series, and the Maghreb جانفي series), full or
//     abbreviated, with ordinal suffixes ("15th", "1er"), Spanish "de" and English "of" ("the 2nd
//     of April, 1990"); day-month-year with the named month between the same "-", "/" or "."
//     ("02-Apr-1990", "2-APR-90"); and yyyymmdd as one whole number ("19900402", not eight
//     digits of a longer number or a decimal). Any dash counts as "-" (see above).
//   - address: the whole value, and each part separated by commas or line breaks except the
//     last (the region, which the minimization profile's Region generalizer releases), when the
//     part has four letters or digits or more, and each such part without a leading or trailing
//     house number ("Rainbow St" of "12 Rainbow St"); any punctuation and spacing between words.
//   - text: the whole value when it has eight characters or more, spacing and punctuation free.
//   - number: the value as a whole number (not the integer or fraction part of a longer one) when
//     it has four digits or more: shorter numbers are not distinctive and would redact counts and
//     quantities everywhere. Thousands separators are not matched.
//
// Not matched: transliterations and spelling variants (Müller as Mueller, محمد as Mohammed),
// nicknames, initials, misspellings, and a value split across two strings of the request.
//
// Where matches overlap the longest wins; at equal length a subject's value wins over a detection,
// and the earlier subject or field over a later one with the same value. Two overlapping
// occurrences of one form ("aaa" twice in "aaaa") count as one, the first. Matching takes time
// linear in the text and the matches (an Aho–Corasick automaton over all the forms), so no value
// and text, however repetitive, make it quadratic (BenchmarkRedact_Hostile).
//
// # Detected without being named
//
// In the normalized text, letters and digits are read as tokens joined by at most two of
// " .-()/"; a candidate starts at the start of such a run or after a space and ends likewise, so a
// number glued to letters, or inside a UUID, hash, file name, version ("v1.2.3") or model name
// ("gpt-4o-2024-08-06"), is never a candidate.
//
//   - e-mail: local part of letters, digits and ._%+-, "@", a domain with a final label of two
//     letters or more.
//   - phone: "+" and 8–15 digits; "00" and 8–15 digits; national form: a trunk 0 and 9–11 digits
//     in all. Not when three groups are written as a date (dd/mm/yyyy, yyyy-mm-dd), nor dotted
//     groups led by a lone 0 (a version). Years, times, timestamps and amounts with thousands
//     separators do not qualify (no leading 0 or +, or a comma between groups).
//   - IBAN (ISO 13616): country letters, check digits, the country's length from the IBAN
//     registry (15–34 characters for a country not in the table), mod-97 = 1; compact or in
//     space-separated groups of four.
//   - card: 13–19 digits starting 2–6, compact or grouped with one kind of separator (space or
//     "-"), Luhn valid.
//   - national IDs, only for the countries in Options.Countries: US SSN (ddd-dd-dddd or spaced;
//     area not 000, 666 or 9xx, group not 00, serial not 0000; nine bare digits are not flagged),
//     GB NINO (prefix letter rules, suffix A–D), FR NIR (15 characters, 2A/2B Corsica, key
//     97 − mod 97), ES DNI and NIE (check letter mod 23), IT codice fiscale (check character,
//     omocodia accepted), NL BSN (9 digits, 11-proof), TR T.C. Kimlik No (both check digits),
//     DE Steuer-ID (digit repetition rule and ISO 7064 MOD 11,10 check digit), IN Aadhaar (12
//     digits, Verhoeff), JO national number (10 digits starting 9 or 20; the format has no check
//     digit, so other 10-digit numbers starting so are redacted too). Unknown codes are ignored.
//
// Not detected: names, addresses and dates of people not named (no dictionary guesswork),
// national IDs of other countries, passport numbers, phone numbers written without + or 00 or a
// trunk 0 (NANP's "(212) 555-0100" unless a subject's), nine-digit SSNs without separators, and
// identifiers in scripts whose digits are not ASCII, Arabic-Indic or Extended Arabic-Indic.
//
// # Restoring
//
// A Restorer replaces each placeholder the caller may read (allow) that replaced something in
// the request with the stored value, or for a detection the text as the caller wrote it; the
// rest stays as the model wrote it. Restored lists the placeholders it gave back, for the audit
// record. A Stream
// does the same over chunks, holding back only a tail that could still become a placeholder, so
// the output equals Restore of the whole however the answer is split. The escape function
// transforms values before insertion (JSON string escaping inside tool-call arguments).
package redact
