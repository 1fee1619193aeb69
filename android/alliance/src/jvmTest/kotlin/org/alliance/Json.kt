package org.alliance

/**
 * A small JSON reader for the tests that look inside exports (the JVM classpath here has no JSON
 * library): objects become `Map<String, Any?>`, arrays `List<Any?>`, numbers `Double`, plus
 * `String`, `Boolean` and `null`. Strict enough to fail a test on malformed JSON.
 */
fun parseJson(text: String): Any? {
    val reader = JsonReader(text)
    val value = reader.value()
    reader.skipSpace()
    if (!reader.atEnd()) fail("trailing text after JSON at ${reader.position}")
    return value
}

/** `json["a"]["b"]`-style access: a field of an object, failing when it is not one. */
operator fun Any?.get(key: String): Any? {
    val map = this as? Map<*, *> ?: fail("not a JSON object: ${this?.toString()?.take(80)}")
    return map.entries.firstOrNull { it.key == key }?.value
}

/** The elements of a JSON array, failing when it is not one. */
fun Any?.elements(): List<Any?> = this as? List<*> ?: fail("not a JSON array: ${this?.toString()?.take(80)}")

private class JsonReader(private val text: String) {
    var position = 0

    fun atEnd() = position >= text.length

    fun skipSpace() {
        while (!atEnd() && text[position].isWhitespace()) position++
    }

    private fun peek(): Char {
        skipSpace()
        if (atEnd()) fail("unexpected end of JSON")
        return text[position]
    }

    private fun expect(c: Char) {
        if (peek() != c) fail("expected '$c' at $position, found '${text[position]}'")
        position++
    }

    private fun literal(word: String, value: Any?): Any? {
        if (!text.startsWith(word, position)) fail("bad literal at $position")
        position += word.length
        return value
    }

    fun value(): Any? = when (peek()) {
        '{' -> obj()
        '[' -> array()
        '"' -> string()
        't' -> literal("true", true)
        'f' -> literal("false", false)
        'n' -> literal("null", null)
        else -> number()
    }

    private fun obj(): Map<String, Any?> {
        expect('{')
        val map = LinkedHashMap<String, Any?>()
        if (peek() == '}') { position++; return map }
        while (true) {
            peek()
            val key = string()
            expect(':')
            map[key] = value()
            when (peek()) {
                ',' -> position++
                '}' -> { position++; return map }
                else -> fail("expected ',' or '}' at $position")
            }
        }
    }

    private fun array(): List<Any?> {
        expect('[')
        val list = mutableListOf<Any?>()
        if (peek() == ']') { position++; return list }
        while (true) {
            list += value()
            when (peek()) {
                ',' -> position++
                ']' -> { position++; return list }
                else -> fail("expected ',' or ']' at $position")
            }
        }
    }

    private fun string(): String {
        expect('"')
        val out = StringBuilder()
        while (true) {
            if (atEnd()) fail("unterminated string")
            when (val c = text[position++]) {
                '"' -> return out.toString()
                '\\' -> when (val e = text[position++]) {
                    'n' -> out.append('\n')
                    't' -> out.append('\t')
                    'r' -> out.append('\r')
                    'b' -> out.append('\b')
                    'f' -> out.append('\u000C')
                    'u' -> {
                        out.append(text.substring(position, position + 4).toInt(16).toChar())
                        position += 4
                    }
                    else -> out.append(e)
                }
                else -> out.append(c)
            }
        }
    }

    private fun number(): Double {
        val start = position
        while (!atEnd() && (text[position].isDigit() || text[position] in "+-.eE")) position++
        return text.substring(start, position).toDoubleOrNull() ?: fail("bad number at $start")
    }
}
