"""The failure pages' texts in other languages than English: one table per language, keyed by failure code.

The English text of a failure is its class's ``message`` (:mod:`sso_middleware.errors`,
one class per code: the catalogue); this module holds what the pages show instead when
the browser prefers another language (``Accept-Language``, negotiated in
:mod:`sso_middleware._wsgi.pages`).  :data:`GERMAN` is keyed by the same codes; a code
without an entry is shown in English, the whole page, never half-translated.
``tests/unit/test_translations.py`` fails for any code that can reach a failure page
and has no German text, naming the codes, so a new failure class cannot ship without one.

:data:`CHROME` holds the page's own words (titles, "Error code", the link home) in every
language, English included: they belong to no failure class.

Security caveat: these are fixed texts; nothing from a request is ever looked up as a
format string here.  ``ProviderRefused``'s text keeps its one ``{detail}`` field, filled
(and escaped afterwards, like every value) by :func:`sso_middleware.errors.describe`'s caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: The languages the pages speak, the default first.
LANGUAGES = ("en", "de")

#: German text of every failure page, by code (``provider_error`` keeps its ``{detail}``).
GERMAN: Mapping[str, str] = MappingProxyType({
    "unknown_error": "Die Anmeldung ist nicht gelungen. Bitte versuchen Sie es noch einmal.",
    "invalid_request": "Der Link ist fehlerhaft. Bitte beginnen Sie noch einmal in der Anwendung.",
    "missing_target_url": "Der Link ist unvollständig: Er sagt nicht, wohin es nach der Anmeldung gehen soll.",
    "invalid_target_url": "Der Link führt zu einer Adresse, an die diese Website niemanden weiterleitet.",
    "missing_connection": "Der Link ist unvollständig: Er sagt nicht, über welche Verbindung Sie sich anmelden.",
    "invalid_connection": "Der Link nennt eine Anmeldeverbindung, die nicht gültig ist.",
    "connection_not_allowed": "Der Link verlangt eine Anmeldeverbindung, die diese Website nicht annimmt.",
    "invalid_authorize_param": ("Der Link enthält eine Anmeldeoption, die diese Website nicht annimmt (zu lang, nicht "
                                "druckbar oder nicht erlaubt). Bitte beginnen Sie noch einmal in der Anwendung."),
    "organization_not_allowed": "Der Link nennt eine Organisation, bei der diese Website niemanden anmeldet.",
    "authorize_hook_failed": ("Die Anmeldung kann gerade nicht beginnen; der Betreiber der Website ist informiert. "
                              "Bitte versuchen Sie es später noch einmal."),
    "invalid_state": ("Dieser Anmeldelink ist abgelaufen oder wurde schon benutzt. Bitte melden Sie sich noch "
                      "einmal an."),
    "missing_code": ("Die Antwort des Anmeldedienstes war unvollständig. Bitte melden Sie sich noch einmal an."),
    "issuer_mismatch": ("Die Anmeldeantwort kam nicht vom erwarteten Anmeldedienst. Bitte melden Sie sich noch "
                        "einmal an."),
    "invalid_id_token": "Das Identitätstoken des Anmeldedienstes konnte nicht geprüft werden.",
    "invalid_logout_token": "Das Abmeldetoken konnte nicht geprüft werden.",
    "userinfo_mismatch": "Der Anmeldedienst hat widersprüchliche Angaben zur Identität geliefert.",
    "invalid_token_response": "Der Anmeldedienst hat eine Antwort gegeben, die nicht verstanden werden konnte.",
    "step_up_failed": ("Diese Seite verlangt eine neuere oder stärkere Anmeldung als die soeben erfolgte. Bitte "
                       "versuchen Sie es noch einmal und führen Sie jeden Schritt aus, den die Anmeldeseite verlangt."),
    "invalid_organization": ("Sie haben sich angemeldet, aber nicht als Mitglied der Organisation, für die diese "
                             "Anmeldung gedacht war. Verwenden Sie die Einladung oder das Konto dieser Organisation, "
                             "oder bitten Sie ihre Administration um Zugang."),
    "provider_error": "Der Anmeldedienst hat Sie nicht angemeldet ({detail}).",
    "provider_bad_response": "Der Anmeldedienst hat eine Antwort gegeben, die nicht verstanden werden konnte.",
    "signing_algorithm_mismatch": ("Diese Website und ihr Anmeldedienst sind sich nicht einig, wie Identitätstokens "
                                   "signiert werden; deshalb kann sich gerade niemand anmelden. Der Betreiber der "
                                   "Website ist informiert."),
    "par_failed": ("Der Anmeldedienst hat die Anfrage dieser Website, die Anmeldung zu beginnen, abgelehnt oder nicht "
                   "verstanden. Bitte versuchen Sie es später noch einmal; der Betreiber der Website ist informiert."),
    "par_required": ("Der Anmeldedienst verlangt Pushed Authorization Requests, die diese Website nicht sendet "
                     "(pushed_authorization); der Betreiber der Website ist informiert."),
    "par_unavailable": ("Diese Website verlangt Pushed Authorization Requests, die ihr Anmeldedienst nicht anbietet; "
                        "der Betreiber der Website ist informiert."),
    "provider_unreachable": "Der Anmeldedienst ist gerade nicht erreichbar. Bitte versuchen Sie es später noch einmal.",
    "provider_timeout": ("Der Anmeldedienst hat nicht rechtzeitig geantwortet. Bitte versuchen Sie es später noch "
                         "einmal."),
    "provider_proxy_error": ("Der Anmeldedienst ist über den ausgehenden Proxy dieser Website (http_proxy) nicht "
                             "erreichbar. Der Betreiber der Website ist informiert; bitte versuchen Sie es später "
                             "noch einmal."),
    "provider_tls_error": ("Eine sichere Verbindung zum Anmeldedienst kam nicht zustande: Seinem Zertifikat wird "
                           "nicht vertraut (ca_bundle), oder er hat das Client-Zertifikat dieser Website abgelehnt "
                           "(tls_client_cert). Bitte versuchen Sie es später noch einmal."),
    "session_store_unavailable": ("Sitzungen können gerade nicht gelesen oder gespeichert werden. Bitte versuchen Sie "
                                  "es gleich noch einmal."),
    "session_too_large": ("Ihre Sitzung ist zu groß für die Cookie-Speicherung dieser Website; der Betreiber der "
                          "Website ist informiert."),
    "forbidden": "Sie sind angemeldet, aber Ihr Konto darf diese Seite nicht öffnen.",
    "sign_in_denied": ("Sie haben sich beim Anmeldedienst angemeldet, aber diese Website lässt Ihr Konto nicht zu. "
                       "Falls das ein Irrtum ist, nennen Sie dem Support der Website den Fehlercode unten."),
    "sign_in_hook_failed": ("Sie haben sich beim Anmeldedienst angemeldet, aber diese Website konnte die Anmeldung "
                            "nicht abschließen; der Betreiber wurde informiert. Bitte versuchen Sie es später erneut."),
    "invalid_logout_request": "Die Abmeldeanfrage des Anmeldedienstes ist ungültig.",
    "logout_issuer_mismatch": "Die Abmeldeanfrage stammt nicht vom Anmeldedienst dieser Website.",
    "logout_request_too_long": "Die Abmeldeanfrage ist zu lang.",
    "preserve_post_refused": ("Ihre Sitzung ist abgelaufen, und das gesendete Formular konnte nicht aufbewahrt werden. "
                              "Bitte melden Sie sich an und senden Sie es erneut."),
    "preserve_post_too_large": ("Ihre Sitzung ist abgelaufen, und das Formular ist zu groß, um während der erneuten "
                                "Anmeldung aufbewahrt zu werden. Bitte kopieren Sie Ihre Eingaben, melden Sie sich an "
                                "und senden Sie es erneut."),
    "preserve_post_length_required": ("Ihre Sitzung ist abgelaufen, und das Formular hat seine Größe nicht angegeben, "
                                      "daher konnte es nicht aufbewahrt werden. Bitte melden Sie sich an und senden "
                                      "Sie es erneut."),
    "preserve_post_unsupported": ("Ihre Sitzung ist abgelaufen, und diese Art von Formular (zum Beispiel mit "
                                  "Datei-Upload) kann während der erneuten Anmeldung nicht aufbewahrt werden. Bitte "
                                  "kopieren Sie Ihre Eingaben, melden Sie sich an und senden Sie es erneut."),
    "preserve_post_unreadable": ("Ihre Sitzung ist abgelaufen, und das Formular konnte nicht gelesen werden, daher "
                                 "wurde es nicht aufbewahrt. Bitte melden Sie sich an und senden Sie es erneut."),
    "preserve_post_cross_site": ("Ihre Sitzung ist abgelaufen, und das Formular wurde von einer anderen Website "
                                 "gesendet, daher wurde es nicht aufbewahrt. Bitte melden Sie sich an und verwenden "
                                 "Sie das Formular auf dieser Website."),
    "preserve_post_busy": ("Ihre Sitzung ist abgelaufen, und das gesendete Formular konnte gerade nicht aufbewahrt "
                           "werden. Bitte kopieren Sie Ihre Eingaben, melden Sie sich an und senden Sie es erneut."),
    "preserve_post_other_user": ("Sie sind als ein anderer Benutzer angemeldet als derjenige, der das Formular "
                                 "ausgefüllt hat, daher wurde es nicht gesendet. Bitte füllen Sie es erneut aus, wenn "
                                 "Sie das wollten."),
    "preserve_post_lost": ("Sie sind wieder angemeldet, aber das zuvor gesendete Formular konnte nicht "
                           "wiederhergestellt werden (es ist abgelaufen oder wurde bereits gesendet). Bitte füllen "
                           "Sie es erneut aus."),
})

#: ``ProviderRefused``'s ``{detail}`` for a provider error outside the OAuth vocabulary, by language.
OTHER_REASON: Mapping[str, str] = MappingProxyType({"en": "other reason", "de": "anderer Grund"})

#: The page's own words, by language: the titles (by kind) and the labels around the message.
CHROME: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "en": MappingProxyType({
        "failed": "Signing in did not work",
        "unavailable": "Sign-in service unavailable",
        "forbidden": "Access denied",
        "code_label": "Error code",
        "home_label": "Back to the start page",
    }),
    "de": MappingProxyType({
        "failed": "Die Anmeldung hat nicht funktioniert",
        "unavailable": "Anmeldedienst nicht verfügbar",
        "forbidden": "Zugriff verweigert",
        "code_label": "Fehlercode",
        "home_label": "Zurück zur Startseite",
    }),
})

#: Each language's table of failure texts (English lives on the classes, so it has none here).
MESSAGES: Mapping[str, Mapping[str, str]] = MappingProxyType({"de": GERMAN})
