from django.http import HttpResponse


def execution_list(request):
    return HttpResponse("Gust")
