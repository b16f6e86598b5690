"""The public pages' words in English and Spanish (tipsters choose; nothing is guessed)."""

from __future__ import annotations

from workflows.vocabulary import LANGUAGES

HOTLINE_PHONE = "1-888-373-7888"
HOTLINE_TEXT = "233733"

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Report human trafficking",
        "intro": "Tell us what you saw or what is happening to you. You do not have to give "
        "your name.",
        "call_us": "Call the hotline",
        "text_us": "Text",
        "emergency": "In immediate danger? Call 911.",
        "warning": "We may report to law enforcement where someone is in danger or a minor is "
        "involved.",
        "quick_exit": "Quick exit",
        "quick_exit_hint": "Leaves this site at once (or press Escape).",
        "tip_link": "Send a tip online",
        "follow_link": "Follow up on a tip you sent",
        "narrative": "What happened?",
        "narrative_hint": "Who, what, when, where. Please do not put yourself at risk.",
        "location": "Where? (city, address or place)",
        "anonymous": "Keep me anonymous: do not share my name or contact details with agencies",
        "contact": "How we could reach you (optional)",
        "phone": "Phone number",
        "email": "E-mail address",
        "safe_hours": "When is it safe to text you? (optional; we hold texts until then)",
        "safe_from": "From",
        "safe_to": "to",
        "safe_zone": "Your time zone",
        "safe_zone_pick": "Choose",
        "announce_only": "Texts only say that you have a message, never what it says (you "
        "read it here with your reference and passphrase)",
        "send": "Send the tip",
        "errors": "Please check the fields marked below.",
        "resend": "Your page had expired, so nothing was sent yet. Please press Send again.",
        "received_title": "Thank you. Your tip was received.",
        "received_keep": "Write these down now. They are shown only once, and we cannot "
        "show them again.",
        "reference": "Reference",
        "passphrase": "Passphrase",
        "received_next": "With both you can read our replies and add information later:",
        "follow_title": "Follow up on your tip",
        "open": "Open",
        "not_found": "No tip matches that reference and passphrase.",
        "status": "Status",
        "replies": "Messages",
        "no_messages": "No messages yet.",
        "from_you": "You",
        "from_hotline": "Hotline",
        "add_info": "Add information",
        "add": "Send",
        "added": "Thank you, your information was added.",
        "other_language": "Español",
    },
    "es": {
        "title": "Denuncie la trata de personas",
        "intro": "Cuéntenos lo que vio o lo que le está pasando. No tiene que dar su nombre.",
        "call_us": "Llame a la línea directa",
        "text_us": "Envíe un mensaje de texto al",
        "emergency": "¿Peligro inmediato? Llame al 911.",
        "warning": "Podemos informar a las autoridades si alguien está en peligro o si hay un "
        "menor involucrado.",
        "quick_exit": "Salida rápida",
        "quick_exit_hint": "Sale de este sitio de inmediato (o pulse Escape).",
        "tip_link": "Enviar una denuncia en línea",
        "follow_link": "Dar seguimiento a una denuncia enviada",
        "narrative": "¿Qué pasó?",
        "narrative_hint": "Quién, qué, cuándo, dónde. No se ponga en riesgo.",
        "location": "¿Dónde? (ciudad, dirección o lugar)",
        "anonymous": "Mantenerme anónimo: no compartir mi nombre ni mis datos con las agencias",
        "contact": "Cómo podríamos contactarle (opcional)",
        "phone": "Número de teléfono",
        "email": "Correo electrónico",
        "safe_hours": "¿Cuándo es seguro enviarle mensajes de texto? (opcional; esperamos "
        "hasta entonces)",
        "safe_from": "De",
        "safe_to": "a",
        "safe_zone": "Su zona horaria",
        "safe_zone_pick": "Elija",
        "announce_only": "Los mensajes solo dicen que tiene un mensaje, nunca lo que dice (lo "
        "lee aquí con su referencia y frase de acceso)",
        "send": "Enviar la denuncia",
        "errors": "Revise los campos marcados abajo.",
        "resend": "Su página había caducado y todavía no se envió nada. Pulse Enviar otra vez.",
        "received_title": "Gracias. Recibimos su denuncia.",
        "received_keep": "Anótelos ahora. Solo se muestran una vez y no podemos mostrarlos "
        "de nuevo.",
        "reference": "Referencia",
        "passphrase": "Frase de acceso",
        "received_next": "Con ambos puede leer nuestras respuestas y agregar información:",
        "follow_title": "Seguimiento de su denuncia",
        "open": "Abrir",
        "not_found": "Ninguna denuncia coincide con esa referencia y frase de acceso.",
        "status": "Estado",
        "replies": "Mensajes",
        "no_messages": "Todavía no hay mensajes.",
        "from_you": "Usted",
        "from_hotline": "Línea directa",
        "add_info": "Agregar información",
        "add": "Enviar",
        "added": "Gracias, su información fue agregada.",
        "other_language": "English",
    },
}
STATUS_WORDS = {
    "en": {"received": "received", "in review": "in review", "closed": "closed"},
    "es": {"received": "recibida", "in review": "en revisión", "closed": "cerrada"},
}


def pick_language(raw: str | None) -> str:
    """A supported language code; anything else is English."""
    return raw if raw in LANGUAGES else "en"

# The zones a tipster picks from on the tip form (the API takes any IANA name).
TIME_ZONES = {
    "en": {
        "America/New_York": "Eastern (New York)", "America/Chicago": "Central (Chicago)",
        "America/Denver": "Mountain (Denver)", "America/Phoenix": "Arizona (Phoenix)",
        "America/Los_Angeles": "Pacific (Los Angeles)", "America/Anchorage": "Alaska",
        "Pacific/Honolulu": "Hawaii", "America/Puerto_Rico": "Puerto Rico",
        "America/Mexico_City": "Mexico City",
    },
    "es": {
        "America/New_York": "Este (Nueva York)", "America/Chicago": "Centro (Chicago)",
        "America/Denver": "Montaña (Denver)", "America/Phoenix": "Arizona (Phoenix)",
        "America/Los_Angeles": "Pacífico (Los Ángeles)", "America/Anchorage": "Alaska",
        "Pacific/Honolulu": "Hawái", "America/Puerto_Rico": "Puerto Rico",
        "America/Mexico_City": "Ciudad de México",
    },
}
